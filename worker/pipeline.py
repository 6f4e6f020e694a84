"""One synthesis job from claim to result: the body of the Celery task, as a plain function.

claim -> plan chunks -> generate what is not checkpointed yet -> stitch -> normalise -> encode ->
upload -> succeeded. Every finished chunk is checkpointed before it is counted, so a job redelivered
after a crash resumes at the first missing chunk, and a progress write refused by the store means the
job was canceled.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from shared import metrics
from shared.audio.formats import file_rate
from shared.audio.quality import assess_chunk
from shared.audio.trim import trim_silence
from shared.jobs import JobCreate, JobStatus, StoredFile, StoredResult
from shared.storage_keys import manifest_key, result_prefix
from shared.text.rate import SpeechRate
from shared.usage import record_chunk_usage
from shared.webhooks import emit_job_event
from worker import assembly, checkpoints
from worker.engines.base import ChunkRequest, ChunkResult, EngineError
from worker.phases import Phases
from worker.planning import Plan, PlannedChunk, build_plan
from worker.runtime import Runtime
from worker.voice_embeddings import VoiceUnavailable, load_job_voices

log = logging.getLogger(__name__)


PLAN_LANGUAGE = "en"
"""Text rules and speech-rate key; English until jobs carry a language."""


class Canceled(Exception):
    """The job left the running state while we worked on it."""


def run_job(job_id: str, rt: Runtime) -> JobStatus | None:
    """Run or resume a job; returns its final status, or None when there was nothing to do."""
    claim = rt.jobs.claim(job_id, max_attempts=rt.settings.max_attempts)
    if claim.outcome == "exhausted":
        checkpoints.discard(rt.storage, job_id)
        metrics.JOBS_FINISHED.labels(status="failed").inc()
        emit_job_event(rt.services, job_id)
        return JobStatus.FAILED
    if claim.outcome != "claimed":
        log.info("job %s not runnable (%s)", job_id, claim.outcome)
        return None
    spec = rt.jobs.spec(job_id)
    tenant = rt.jobs.tenant_of(job_id)
    if spec is None or tenant is None:
        return None
    view = rt.jobs.view(job_id)
    if claim.attempts == 1 and view and view.started_at:
        metrics.QUEUE_WAIT.observe(max(0.0, view.started_at.timestamp() - view.created_at.timestamp()))
    started = time.time()
    try:
        _synthesize_job(job_id, tenant, spec, rt)
        status = JobStatus.SUCCEEDED
    except Canceled:
        status = JobStatus.CANCELED
    except SoftTimeLimitExceeded as exc:
        status = _fail(rt, job_id, "time_limit", f"The job exceeded its time limit ({exc}).")
    except VoiceUnavailable as exc:
        status = _fail(rt, job_id, exc.code, str(exc))
    except EngineError as exc:
        status = _fail(rt, job_id, "synthesis_failed", str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        status = _fail(rt, job_id, "internal_error", f"{type(exc).__name__}: {exc}")
    if status != JobStatus.SUCCEEDED:
        checkpoints.discard(rt.storage, job_id)
        if rt.jobs.status(job_id) == JobStatus.CANCELED:
            rt.storage.delete_prefix(result_prefix(tenant, job_id))
            status = JobStatus.CANCELED
    metrics.JOBS_FINISHED.labels(status=status.value).inc()
    if status != JobStatus.CANCELED:  # a cancel is the API's transition; it sent the event
        emit_job_event(rt.services, job_id)
    metrics.JOB_DURATION.observe(time.time() - started)
    rt.report_gpu_memory()
    return status


def _fail(rt: Runtime, job_id: str, code: str, message: str) -> JobStatus:
    rt.jobs.finish(job_id, JobStatus.FAILED, error={"code": code, "message": message})
    return JobStatus.FAILED


def _synthesize_job(job_id: str, tenant: str, spec: JobCreate, rt: Runtime) -> None:
    engine, settings = rt.engine, rt.settings
    phases = Phases()
    cloned = load_job_voices(spec, tenant, rt)
    rate = _planning_rate(job_id, rt)
    with phases.timed("chunking"):
        plan = build_plan(
            spec,
            budget_seconds=settings.chunk_budget_seconds,
            chars_per_second=rate,
            streams=spec.streams or engine.default_streams,
            voice_default=engine.default_voice(),
            cloned=cloned,
        )
    total = len(plan.all())
    if not rt.jobs.update_running(job_id, chunks_total=total):
        raise Canceled
    with phases.timed("generation"):
        _generate_missing(job_id, plan, rt)
    _learn_speech_rate(job_id, plan, rt)
    _assemble(job_id, tenant, spec, plan, rt, phases)


def _planning_rate(job_id: str, rt: Runtime) -> float:
    """Chars per second for sizing chunks: learned from earlier jobs of this engine, and frozen in the job
    record at the first attempt, so a resumed job plans exactly the same chunks as its checkpoints."""
    frozen = rt.jobs.counters(job_id).get("plan_chars_per_second")
    if frozen:
        return frozen
    learned = rt.jobs.speech_rate(rt.engine.name, PLAN_LANGUAGE)
    rate = SpeechRate.from_dict(learned) if learned else SpeechRate(prior=rt.settings.chars_per_second)
    value = rate.chars_per_second
    rt.jobs.update_running(job_id, plan_chars_per_second=value)
    return value


def _learn_speech_rate(job_id: str, plan: Plan, rt: Runtime) -> None:
    """Fold this job's measured chunk durations into the engine's speech-rate estimate."""
    rate = SpeechRate.from_dict(
        rt.jobs.speech_rate(rt.engine.name, PLAN_LANGUAGE) or {"prior": rt.settings.chars_per_second}
    )
    done = rt.jobs.done_chunks(job_id)
    for planned in plan.all():
        if planned.key in done:
            rate.update(len(planned.chunk.text), done[planned.key].seconds)
    rt.jobs.save_speech_rate(rt.engine.name, PLAN_LANGUAGE, rate.to_dict())


def _generate_missing(job_id: str, plan: Plan, rt: Runtime) -> None:
    engine = rt.engine
    done = rt.jobs.done_chunks(job_id)
    order = plan.generation_order()
    remaining = [planned for planned in order if planned.key not in done]
    if not remaining:
        return
    carry_in: dict[int, bytes] = {}
    by_stream: dict[int, list[PlannedChunk]] = {}
    for planned in order:
        by_stream.setdefault(planned.request.stream, []).append(planned)
    for stream, chunks in by_stream.items():
        first_missing = next((i for i, p in enumerate(chunks) if p.key not in done), None)
        if first_missing:
            carry = done[chunks[first_missing - 1].key].carry
            if carry is not None:
                carry_in[stream] = carry
    refused: set[str] = set()

    def review(request: ChunkRequest, result: ChunkResult) -> bool:
        # Judged on the untrimmed draw: the check finds the speech inside it itself.
        verdict = assess_chunk(result.audio, engine.sample_rate, expected_seconds=request.expected_seconds)
        if verdict.ok:
            return True
        if request.key in refused:  # kept anyway: a second bad draw is more likely the estimate than the audio
            log.warning("job %s chunk %s: still %s after regenerating; kept", job_id, request.key, verdict.problem)
        else:
            log.warning("job %s chunk %s: %s, regenerating", job_id, request.key, verdict.problem)
            refused.add(request.key)
            metrics.CHUNKS_REDRAWN.inc()
        return False

    def finish_chunk(result: ChunkResult) -> None:
        _checkpoint(job_id, rt, result, trim_silence(result.audio, engine.sample_rate))

    # Post-processing and checkpoint writes (storage round trips) run beside generation, in order.
    results = engine.generate([planned.request for planned in remaining], carry_in, review)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") as writer:
        pending: list[Future[None]] = []
        try:
            for result in results:
                pending.append(writer.submit(finish_chunk, result))
                for future in [f for f in pending if f.done()]:
                    pending.remove(future)
                    future.result()  # re-raises Canceled or a storage error here
                rt.report_gpu_memory()
        finally:
            results.close()
            for future in pending:
                future.result()


def _checkpoint(job_id: str, rt: Runtime, result: ChunkResult, audio: np.ndarray) -> None:
    rate = rt.engine.sample_rate
    checkpoints.save_chunk(rt.storage, job_id, result.key, audio, rate)
    seconds = len(audio) / rate
    if not rt.jobs.record_chunk(
        job_id, result.key, seconds=seconds, synth_seconds=result.synth_seconds, carry=result.carry
    ):
        raise Canceled
    record_chunk_usage(rt.services, job_id, result.key, audio_seconds=seconds, engine_seconds=result.synth_seconds)
    metrics.AUDIO_SECONDS.inc(seconds)
    metrics.SYNTHESIS_SECONDS.inc(result.synth_seconds)
    if seconds > 0:
        metrics.CHUNK_RTF.observe(result.synth_seconds / seconds)


def _assemble(job_id: str, tenant: str, spec: JobCreate, plan: Plan, rt: Runtime, phases: Phases) -> None:
    storage = rt.storage
    prefix = result_prefix(tenant, job_id)
    input_ids = spec.input_ids()
    mastering = assembly.Mastering.from_settings(rt.settings)
    rate = file_rate(spec.format, spec.sample_rate or rt.engine.sample_rate)
    tags = spec.file_tags()

    def load(planned: PlannedChunk) -> np.ndarray:
        return checkpoints.load_chunk(storage, job_id, planned.key)

    results: dict[str, StoredFile] = {}
    file_result: StoredFile | None = None
    for output in assembly.outputs_for(job_id, spec):
        if rt.jobs.status(job_id) != JobStatus.RUNNING:
            raise Canceled
        rendered = assembly.build_file(
            output,
            plan,
            load,
            sample_rate=rt.engine.sample_rate,
            file_rate=rate,
            mastering=mastering,
            input_ids=input_ids,
            phases=phases,
        )
        uploaded = assembly.upload_file(storage, prefix, output, rendered, spec.format, tags, phases)
        if output.per_input:
            results[input_ids[output.inputs[0]]] = uploaded
        else:
            file_result = uploaded
    manifest = None
    if results:
        manifest = assembly.upload_manifest(
            storage, manifest_key(tenant, job_id), job_id, spec, results, rt.engine.default_voice()
        )
    result = StoredResult(file=file_result, inputs=results, manifest=manifest).model_dump(mode="json")
    if not rt.jobs.finish(job_id, JobStatus.SUCCEEDED, result=result, timings=phases.rounded()):
        raise Canceled
    checkpoints.discard(storage, job_id)
