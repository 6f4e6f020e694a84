"""A job's plan unit: chunk its inputs once, cut the chunks into speak units, register them, send tokens.

The speech rate that sizes the chunks is the engine's learned one at planning time; the plan is stored
with the job (`UnitStore.register_plan`), so a unit given back, on any worker, works on exactly the
chunks it was given.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

from shared import metrics
from shared.audio.formats import AudioFormat
from shared.input_languages import resolve_languages
from shared.jobs import JobCreate, JobPriority
from shared.revisions import RevisionRecord
from shared.text.rate import SpeechRate
from shared.units import UnitClaim
from worker import line_cache
from worker.outcomes import Stopped
from worker.planning import PLAN_LANGUAGE, build_plan, chunks_to_json, pack_units
from worker.render_record import differences, engine_identity
from worker.revision_plan import plan_pick, plan_revision
from worker.runtime import Runtime
from worker.voice_embeddings import ClonedVoice, VoiceUnavailable, load_job_voices

log = logging.getLogger(__name__)


def _failed_lines(spec: JobCreate, unavailable: dict[str, VoiceUnavailable]) -> dict[int, dict[str, str]]:
    """The lines whose voice cannot be used; when that is every line, the job fails with the first."""
    failed: dict[int, dict[str, str]] = {}
    for index, item in enumerate(spec.inputs):
        voice = item.voice or spec.voice
        if voice is not None and voice in unavailable:
            failed[index] = {"code": unavailable[voice].code, "message": str(unavailable[voice])}
    if failed and len(failed) == len(spec.inputs):
        raise next(iter(unavailable.values()))
    return failed


def run_plan(claim: UnitClaim, rt: Runtime) -> int:
    """Plan the job and make its speak units ready; returns how many. Raises `Stopped` when the job is
    no longer running, `VoiceUnavailable` for a voice it cannot use, `LanguageRefused` for a language
    the engine cannot speak. Records the language of each input in the job (detected where unnamed)."""
    spec = rt.jobs.spec(claim.job_id)
    if spec is None:
        raise Stopped
    view = rt.jobs.view(claim.job_id)
    if claim.attempts == 1 and view and view.started_at:
        metrics.QUEUE_WAIT.observe(max(0.0, view.started_at.timestamp() - view.created_at.timestamp()))
    settings, engine = rt.settings, rt.engine
    learned = rt.jobs.speech_rate(engine.name, PLAN_LANGUAGE)
    rate = SpeechRate.from_dict(learned) if learned else SpeechRate(prior=settings.chars_per_second)
    revision = rt.jobs.revision(claim.job_id)
    if revision is not None:  # a pickup: only the chunks covering its ranges
        cloned = load_job_voices(spec, claim.tenant, rt)
        return _plan_pickup(claim, rt, RevisionRecord.model_validate(revision), rate, cloned)
    lines = line_cache.is_line_batch(spec)
    unavailable: dict[str, VoiceUnavailable] = {}
    cloned = load_job_voices(spec, claim.tenant, rt, unavailable if lines else None)
    failed = _failed_lines(spec, unavailable)
    detection = time.perf_counter()
    # Raises LanguageRefused when the engine changed since submission and cannot speak a named language.
    languages = resolve_languages(
        spec, engine.languages(), {voice.id: voice.language for voice in engine.voices() if voice.language}
    )
    detection = time.perf_counter() - detection
    rt.jobs.set_input_languages(claim.job_id, [(item.language, item.detected) for item in languages])
    digests = (
        line_cache.digests_for(
            spec,
            settings=settings,
            engine=engine,
            cloned=cloned,
            languages=[item.language for item in languages],
            skip=failed,
        )
        if lines
        else {}
    )
    reused = line_cache.find_cached(rt.storage, claim.tenant, digests, AudioFormat(spec.format).extension)
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
        unit_audio_seconds=settings.unit_audio_seconds,
        languages=[item.language for item in languages],
        voice_for=engine.default_voice,
        skip=frozenset(failed) | reused,
        first_chunk_chars=first_chunk_chars,
    )
    plan = replace(plan, failed=failed, digests=digests, reused=frozenset(reused))
    chunking = time.perf_counter() - chunking
    # A job with nothing speakable has no speak unit: register_plan makes its assemble unit ready.
    units = pack_units(plan, settings.unit_audio_seconds)
    made_ready = rt.units.register_plan(
        claim,
        plan={
            **plan.to_dict(),
            "chars_per_second": rate.chars_per_second,
            "planned_at": time.time(),
            "timings": {"language_detection": round(detection, 4), "chunking": round(chunking, 4)},
            # Per input: the voice and language it is spoken in (the manifest names them).
            "spoken": [
                [item.voice or spec.voice or engine.default_voice(language.language), language.language]
                for item, language in zip(spec.inputs, languages, strict=True)
            ],
        },
        units=[chunks_to_json(chunks) for chunks in units],
        chunks_total=len(plan.all()),
        engine=engine.name,
    )
    if made_ready is None:
        raise Stopped
    log.info(
        "job %s planned: %d chunks in %d speak units (%d lines reused, %d failed)",
        claim.job_id, len(plan.all()), len(units), len(reused), len(failed),
    )  # fmt: skip
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
