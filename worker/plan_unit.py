"""A job's plan unit: chunk its inputs once, cut the chunks into speak units, register them, send tokens.

The speech rate that sizes the chunks is the engine's learned one at planning time; the plan is stored
with the job (`UnitStore.register_plan`), so a unit given back, on any worker, works on exactly the
chunks it was given.
"""

from __future__ import annotations

import logging
import time

from shared import metrics
from shared.jobs import JobPriority
from shared.text.rate import SpeechRate
from shared.units import UnitClaim
from worker.outcomes import Stopped
from worker.planning import PLAN_LANGUAGE, build_plan, chunks_to_json, pack_units
from worker.runtime import Runtime
from worker.voice_embeddings import load_job_voices

log = logging.getLogger(__name__)


def run_plan(claim: UnitClaim, rt: Runtime) -> int:
    """Plan the job and make its speak units ready; returns how many. Raises `Stopped` when the job is
    no longer running, `VoiceUnavailable` for a voice it cannot use."""
    spec = rt.jobs.spec(claim.job_id)
    if spec is None:
        raise Stopped
    view = rt.jobs.view(claim.job_id)
    if claim.attempts == 1 and view and view.started_at:
        metrics.QUEUE_WAIT.observe(max(0.0, view.started_at.timestamp() - view.created_at.timestamp()))
    settings, engine = rt.settings, rt.engine
    cloned = load_job_voices(spec, claim.tenant, rt)
    learned = rt.jobs.speech_rate(engine.name, PLAN_LANGUAGE)
    rate = SpeechRate.from_dict(learned) if learned else SpeechRate(prior=settings.chars_per_second)
    interactive = spec.priority == JobPriority.INTERACTIVE
    first_chunk_chars = (settings.interactive_first_chunk_chars or None) if interactive else None
    chunking = time.perf_counter()
    plan = build_plan(
        spec,
        budget_seconds=settings.chunk_budget_seconds,
        chars_per_second=rate.chars_per_second,
        streams=spec.streams or engine.default_streams,
        voice_default=engine.default_voice(),
        cloned=cloned,
        language=PLAN_LANGUAGE,
        unit_audio_seconds=settings.unit_audio_seconds,
        first_chunk_chars=first_chunk_chars,
    )
    chunking = time.perf_counter() - chunking
    # A job with nothing speakable has no speak unit: register_plan makes its assemble unit ready.
    units = pack_units(plan, settings.unit_audio_seconds)
    made_ready = rt.units.register_plan(
        claim,
        plan={
            **plan.to_dict(),
            "chars_per_second": rate.chars_per_second,
            "planned_at": time.time(),
            "timings": {"chunking": round(chunking, 4)},
        },
        units=[chunks_to_json(chunks) for chunks in units],
        chunks_total=len(plan.all()),
        engine=engine.name,
    )
    if made_ready is None:
        raise Stopped
    log.info("job %s planned: %d chunks in %d speak units", claim.job_id, len(plan.all()), len(units))
    if made_ready:
        rt.services.enqueue_work(made_ready)
    return made_ready
