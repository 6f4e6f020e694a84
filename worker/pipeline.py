"""One synthesis job from claim to result: the body of the Celery task, as a plain function.

claim -> plan chunks -> generate what is not checkpointed yet -> stitch -> normalise -> encode ->
upload -> succeeded. Every finished chunk is checkpointed before it is counted, so a job redelivered
after a crash resumes at the first missing chunk, and a progress write refused by the store means the
job was canceled.

A claim is a lease (shared/lease.py) renewed while the run works; every write of the run is fenced by
its token, so a second delivery of a running job waits (`RetryLater`) instead of running it twice, and
a run that lost its lease stops without touching the job. Storage that stays unreachable past its
retries sends the job back to the queue (an attempt); clean-up that fails is remembered and retried.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from shared import metrics
from shared.audio.formats import file_rate
from shared.audio.quality import assess_chunk
from shared.audio.trim import trim_silence
from shared.jobs import JobCreate, JobStatus, StoredFile, StoredResult
from shared.lease import LeaseKeeper, LeaseLost
from shared.storage import StorageError, StorageUnavailable
from shared.storage_keys import (
    checkpoint_key,
    checkpoint_prefix,
    manifest_key,
    result_prefix,
    run_checkpoint_prefix,
    run_prefix,
)
from shared.store import Claim
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


class RetryLater(Exception):
    """This delivery cannot run the job now; deliver it again in `seconds` (the Celery task re-sends it
    with that countdown and acknowledges this one)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclass(frozen=True)
class Run:
    """One claimed run of a job: the token its writes are fenced with and where its files go."""

    job_id: str
    tenant: str
    token: str
    attempt: int

    @property
    def files(self) -> str:
        return run_prefix(self.tenant, self.job_id, self.attempt)


def run_job(job_id: str, rt: Runtime) -> JobStatus | None:
    """Run or resume a job; returns its final status, or None when there was nothing to do. Raises
    `RetryLater` when the job must be delivered again later (another run holds it, this run lost its
    claim, or storage stayed unreachable)."""
    settings = rt.settings
    claim = rt.jobs.claim(job_id, max_attempts=settings.max_attempts, lease_seconds=settings.lease_seconds)
    if claim.outcome == "busy":
        # Another run holds the job: never run it twice at once, and never drop this delivery either (if
        # that run's worker vanished, this one takes over once its lease runs out).
        raise RetryLater(claim.retry_in + 1.0, "the job is running under another worker's claim")
    if claim.outcome == "exhausted":
        tenant = rt.jobs.tenant_of(job_id)
        _clean_up(rt, checkpoint_prefix(job_id))
        if tenant:
            _clean_up(rt, result_prefix(tenant, job_id))
        metrics.JOBS_FINISHED.labels(status="failed").inc()
        emit_job_event(rt.services, job_id)
        return JobStatus.FAILED
    if claim.outcome != "claimed":
        log.info("job %s not runnable (%s)", job_id, claim.outcome)
        return None
    keeper = LeaseKeeper(
        lambda: rt.jobs.renew(job_id, claim.token, settings.lease_seconds), period=settings.lease_seconds / 3
    )
    try:
        with keeper:
            status = _run_claimed(job_id, claim, rt)
    finally:
        _release(rt, job_id, claim.token)
    _sweep_deferred_cleanups(rt)
    return status


def _run_claimed(job_id: str, claim: Claim, rt: Runtime) -> JobStatus | None:
    spec = rt.jobs.spec(job_id)
    tenant = rt.jobs.tenant_of(job_id)
    if spec is None or tenant is None:
        return None
    run = Run(job_id, tenant, claim.token, claim.attempts)
    view = rt.jobs.view(job_id)
    if claim.attempts == 1 and view and view.started_at:
        metrics.QUEUE_WAIT.observe(max(0.0, view.started_at.timestamp() - view.created_at.timestamp()))
    started = time.time()
    try:
        status = _attempt(run, spec, rt)
    except LeaseLost:
        log.warning("job %s: another worker took over its claim; run %d stops", job_id, run.attempt)
        # Only this run's own files that no record points to: the job belongs to the new holder.
        _drop_unrecorded_checkpoints(rt, run)
        _clean_up(rt, run.files)
        # Sent again rather than dropped: the lease may have run out while Redis was unreachable with
        # nobody taking over. The new delivery waits while another run holds the job, else resumes it.
        raise RetryLater(1.0, "this run lost its claim") from None
    # Counted once, here: only the run that made the final transition (or saw the cancel) gets here.
    metrics.JOBS_FINISHED.labels(status=status.value).inc()
    if status != JobStatus.CANCELED:  # a cancel is the API's transition; it sent the event
        emit_job_event(rt.services, job_id)
    metrics.JOB_DURATION.observe(time.time() - started)
    rt.report_gpu_memory()
    return status


def _attempt(run: Run, spec: JobCreate, rt: Runtime) -> JobStatus:
    """The run's work and its final transition; `LeaseLost` and `RetryLater` leave the job as it is."""
    job_id = run.job_id
    try:
        _synthesize_job(run, spec, rt)
        _clean_up(rt, checkpoint_prefix(job_id))
        for earlier in range(1, run.attempt):  # files of runs that died or were fenced out mid-upload
            _clean_up(rt, run_prefix(run.tenant, job_id, earlier))
        return JobStatus.SUCCEEDED
    except LeaseLost:
        raise  # before the catch-all below: a fenced-out run records nothing
    except Canceled:
        status = JobStatus.CANCELED
    except StorageUnavailable as exc:
        if run.attempt < rt.settings.max_attempts:
            delay = rt.settings.storage_requeue_seconds * 2 ** (run.attempt - 1)
            log.warning("job %s: storage unavailable (%s); delivering it again in %.0f s", job_id, exc, delay)
            raise RetryLater(delay, f"storage unavailable: {exc}") from exc
        status = _fail(
            rt, run, "storage_unavailable", f"Storage stayed unreachable through {run.attempt} attempts: {exc}"
        )
    except StorageError as exc:
        log.exception("job %s: storage refused an operation", job_id)
        status = _fail(rt, run, "storage_error", str(exc))
    except SoftTimeLimitExceeded as exc:
        status = _fail(rt, run, "time_limit", f"The job exceeded its time limit ({exc}).")
    except VoiceUnavailable as exc:
        status = _fail(rt, run, exc.code, str(exc))
    except EngineError as exc:
        status = _fail(rt, run, "synthesis_failed", str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        status = _fail(rt, run, "internal_error", f"{type(exc).__name__}: {exc}")
    # A job that did not succeed keeps no files: neither checkpoints nor any run's partial results.
    _clean_up(rt, checkpoint_prefix(job_id))
    _clean_up(rt, result_prefix(run.tenant, job_id))
    if rt.jobs.status(job_id) == JobStatus.CANCELED:
        status = JobStatus.CANCELED
    return status


def _fail(rt: Runtime, run: Run, code: str, message: str) -> JobStatus:
    if rt.jobs.finish(run.job_id, run.token, JobStatus.FAILED, error={"code": code, "message": message}):
        return JobStatus.FAILED
    return JobStatus.CANCELED  # it stopped running under our claim: only a cancel does that


def _drop_unrecorded_checkpoints(rt: Runtime, run: Run) -> None:
    """A fenced-out run's checkpoints that it could not record (the new run resumes from those it did;
    it deletes them all when it finishes, and this catches the ones written after that)."""
    done = rt.jobs.done_chunks(run.job_id)
    kept = {checkpoint_key(run.job_id, key, run.attempt) for key, chunk in done.items() if chunk.run == run.attempt}
    try:
        for key in rt.storage.list_keys(run_checkpoint_prefix(run.job_id, run.attempt)):
            if key not in kept:
                rt.storage.delete(key)
    except StorageError as exc:
        log.warning("job %s: could not delete run %d's unrecorded checkpoints (%s)", run.job_id, run.attempt, exc)


def _release(rt: Runtime, job_id: str, token: str) -> None:
    """Give the claim up when the run ends unfinished (a requeue, a crash of the run), so the next
    delivery starts at once; a finished run's lease is already gone."""
    try:
        rt.jobs.release(job_id, token)
    except Exception:
        log.warning("job %s: could not release its claim (it expires by itself)", job_id, exc_info=True)


def _clean_up(rt: Runtime, prefix: str) -> None:
    """Delete a prefix; when storage refuses, remember it for a later sweep instead of failing the job."""
    try:
        rt.storage.delete_prefix(prefix)
    except StorageError as exc:
        log.warning("could not delete %s (%s); retried later", prefix, exc)
        try:
            rt.jobs.defer_cleanup(prefix)
        except Exception:
            log.exception("could not remember %s for a later clean-up", prefix)


def _sweep_deferred_cleanups(rt: Runtime) -> None:
    """Retry clean-ups that failed earlier (any worker's), after each job; stops at the first failure."""
    try:
        pending = rt.jobs.deferred_cleanups()
    except Exception:
        return
    for prefix in pending:
        try:
            rt.storage.delete_prefix(prefix)
        except StorageError as exc:
            log.warning("deferred clean-up of %s still failing (%s)", prefix, exc)
            return
        rt.jobs.cleanup_done(prefix)
        log.info("deferred clean-up of %s done", prefix)


def _synthesize_job(run: Run, spec: JobCreate, rt: Runtime) -> None:
    engine, settings, job_id = rt.engine, rt.settings, run.job_id
    phases = Phases()
    cloned = load_job_voices(spec, run.tenant, rt)
    rate = _planning_rate(run, rt)
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
    if not rt.jobs.update_running(job_id, run.token, chunks_total=total):
        raise Canceled
    with phases.timed("generation"):
        _generate_missing(run, plan, rt)
    _learn_speech_rate(job_id, plan, rt)
    _assemble(run, spec, plan, rt, phases)


def _planning_rate(run: Run, rt: Runtime) -> float:
    """Chars per second for sizing chunks: learned from earlier jobs of this engine, and frozen in the job
    record at the first attempt, so a resumed job plans exactly the same chunks as its checkpoints."""
    frozen = rt.jobs.counters(run.job_id).get("plan_chars_per_second")
    if frozen:
        return frozen
    learned = rt.jobs.speech_rate(rt.engine.name, PLAN_LANGUAGE)
    rate = SpeechRate.from_dict(learned) if learned else SpeechRate(prior=rt.settings.chars_per_second)
    value = rate.chars_per_second
    if not rt.jobs.update_running(run.job_id, run.token, plan_chars_per_second=value):
        raise Canceled
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


def _generate_missing(run: Run, plan: Plan, rt: Runtime) -> None:
    engine, job_id = rt.engine, run.job_id
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
        _checkpoint(run, rt, result, trim_silence(result.audio, engine.sample_rate))

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
            results.close()
            while pending:  # generation is done: the writes still queued, in order
                pending.pop(0).result()
        except Exception:
            # A write failed (storage down, canceled, fenced out): the queued ones would only fail the same
            # way, each after its own retries. The one in progress ends before the run cleans up.
            for future in pending:
                future.cancel()
            results.close()
            wait(pending)
            raise
        except BaseException:
            results.close()  # the process is going down; the executor still runs the queued writes
            raise


def _checkpoint(run: Run, rt: Runtime, result: ChunkResult, audio: np.ndarray) -> None:
    rate = rt.engine.sample_rate
    checkpoints.save_chunk(rt.storage, run.job_id, run.attempt, result.key, audio, rate)
    seconds = len(audio) / rate
    if not rt.jobs.record_chunk(
        run.job_id,
        run.token,
        result.key,
        run=run.attempt,
        seconds=seconds,
        synth_seconds=result.synth_seconds,
        carry=result.carry,
    ):
        raise Canceled
    record_chunk_usage(rt.services, run.job_id, result.key, audio_seconds=seconds, engine_seconds=result.synth_seconds)
    metrics.AUDIO_SECONDS.inc(seconds)
    metrics.SYNTHESIS_SECONDS.inc(result.synth_seconds)
    if seconds > 0:
        metrics.CHUNK_RTF.observe(result.synth_seconds / seconds)


def _assemble(run: Run, spec: JobCreate, plan: Plan, rt: Runtime, phases: Phases) -> None:
    storage, job_id = rt.storage, run.job_id
    prefix = run.files
    input_ids = spec.input_ids()
    mastering = assembly.Mastering.from_settings(rt.settings)
    rate = file_rate(spec.format, spec.sample_rate or rt.engine.sample_rate)
    tags = spec.file_tags()

    done = rt.jobs.done_chunks(job_id)

    def load(planned: PlannedChunk) -> np.ndarray:
        return checkpoints.load_chunk(storage, job_id, done[planned.key].run, planned.key)

    results: dict[str, StoredFile] = {}
    file_result: StoredFile | None = None
    for output in assembly.outputs_for(job_id, spec):
        if not rt.jobs.update_running(job_id, run.token):
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
            storage, manifest_key(run.tenant, job_id, run.attempt), job_id, spec, results, rt.engine.default_voice()
        )
    result = StoredResult(file=file_result, inputs=results, manifest=manifest).model_dump(mode="json")
    if not rt.jobs.finish(job_id, run.token, JobStatus.SUCCEEDED, result=result, timings=phases.rounded()):
        raise Canceled
