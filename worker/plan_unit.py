"""A job's plan unit: chunk its inputs once, cut the chunks into speak units, register them, send tokens.

The speech rate that sizes the chunks is the engine's learned one at planning time; the plan is stored
with the job (`UnitStore.register_plan`), so a unit given back, on any worker, works on exactly the
chunks it was given.
"""

from __future__ import annotations

import json
import logging
import time

from shared import metrics
from shared.revisions import RevisionRecord
from shared.text.rate import SpeechRate
from shared.units import UnitClaim
from worker.outcomes import Stopped
from worker.planning import PLAN_LANGUAGE, build_plan, chunks_to_json, pack_units
from worker.render_record import differences, engine_identity
from worker.revision_plan import plan_pick, plan_revision
from worker.runtime import Runtime
from worker.voice_embeddings import ClonedVoice, load_job_voices

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
    revision = rt.jobs.revision(claim.job_id)
    if revision is not None:
        return _plan_pickup(claim, rt, RevisionRecord.model_validate(revision), rate, cloned)
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


def _plan_pickup(
    claim: UnitClaim, rt: Runtime, revision: RevisionRecord, rate: SpeechRate, cloned: dict[str, ClonedVoice]
) -> int:
    """A pickup's plan: the covered chunks' takes in one speak unit (none for a pick: its takes exist)."""
    started = time.perf_counter()
    if revision.pick_of is not None:
        source = rt.jobs.view(revision.pick_of)
        render = source.stored_result.render if source else None
        if render is None:
            raise RuntimeError(f"revision {revision.pick_of} has no render record")
        plan, takes = plan_pick(rt.storage, render.key), []
    else:
        plan, takes = plan_revision(
            rt.storage, revision, budget_seconds=rt.settings.chunk_budget_seconds,
            chars_per_second=rate.chars_per_second, cloned=cloned, tag=claim.job_id[-8:],
        )  # fmt: skip
    identity = engine_identity(rt.settings, rt.engine.name)
    base = rt.storage.get_bytes(revision.base_render)
    recorded = json.loads(base).get("engine", {})
    plan.update(
        chars_per_second=rate.chars_per_second,
        planned_at=time.time(),
        timings={"chunking": round(time.perf_counter() - started, 4)},
        warnings=differences(recorded, identity),
    )
    made_ready = rt.units.register_plan(
        claim,
        plan=plan,
        units=[chunks_to_json(takes)] if takes else [],
        chunks_total=len(takes),
        engine=rt.engine.name,
    )
    if made_ready is None:
        raise Stopped
    log.info("pickup %s of job %s planned: %d chunks to draw", claim.job_id, revision.parent, len(takes))
    if made_ready:
        rt.services.enqueue_work(made_ready)
    return made_ready
