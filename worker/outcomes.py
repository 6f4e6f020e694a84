"""How a unit's run ends for its job: failures, stops, clean-ups, and the once-per-job metrics and events.

Whatever unit makes a job's final transition (the assemble unit's `finish_job`, any unit's
`fail_job`, the `take` that found a unit out of attempts) is the one caller that counts the job in
`narrate_jobs_finished_total` and queues its webhook; a cancel is the API's transition (it sends the
event) and is counted by the first unit that notices it. A job that did not succeed keeps no files.
Clean-ups that storage refuses are remembered and retried by the sweeper (`sweep_deferred_cleanups`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared import metrics
from shared.jobs import JobStatus
from shared.storage import StorageError
from shared.storage_keys import checkpoint_prefix, result_prefix
from shared.units import Exhausted, UnitClaim
from shared.webhooks import emit_job_event

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The job left the running state while this unit worked on it (canceled, or failed by another unit)."""


def fail(rt: Runtime, claim: UnitClaim, code: str, message: str) -> JobStatus:
    """Fail the job from this unit; only the caller whose call made the transition counts it."""
    if rt.units.fail_job(claim, error={"code": code, "message": message}):
        log.warning("job %s failed in its %s unit %d: %s: %s", claim.job_id, claim.kind, claim.unit, code, message)
        _ended(rt, claim.job_id, claim.tenant, JobStatus.FAILED)
        return JobStatus.FAILED
    return stopped(rt, claim)


def stopped(rt: Runtime, claim: UnitClaim) -> JobStatus:
    """The job stopped running under this unit: its files go (this unit's own writes are done, so the
    last unit to stop leaves nothing behind). A cancel is counted once, by the first unit to notice."""
    status = rt.jobs.status(claim.job_id) or JobStatus.CANCELED
    discard_files(rt, claim.job_id, claim.tenant)
    if status == JobStatus.CANCELED and rt.units.first_to_stop(claim.job_id):
        metrics.JOBS_FINISHED.labels(status=JobStatus.CANCELED.value).inc()
    return status


def exhausted(rt: Runtime, found: Exhausted) -> JobStatus:
    """`take` found a unit out of attempts and failed its job: count it, tell the tenant, clean up."""
    log.warning("job %s failed: %s", found.job_id, found.error.get("message"))
    _ended(rt, found.job_id, found.tenant, JobStatus.FAILED)
    return JobStatus.FAILED


def succeeded(rt: Runtime, job_id: str) -> None:
    metrics.JOBS_FINISHED.labels(status=JobStatus.SUCCEEDED.value).inc()
    emit_job_event(rt.services, job_id)


def _ended(rt: Runtime, job_id: str, tenant: str, status: JobStatus) -> None:
    metrics.JOBS_FINISHED.labels(status=status.value).inc()
    emit_job_event(rt.services, job_id)
    discard_files(rt, job_id, tenant)


def discard_files(rt: Runtime, job_id: str, tenant: str) -> None:
    clean_up(rt, checkpoint_prefix(job_id))
    clean_up(rt, result_prefix(tenant, job_id))


def clean_up(rt: Runtime, prefix: str) -> None:
    """Delete a prefix; when storage refuses, remember it for a later sweep instead of failing anything."""
    try:
        rt.storage.delete_prefix(prefix)
    except StorageError as exc:
        log.warning("could not delete %s (%s); retried later", prefix, exc)
        try:
            rt.jobs.defer_cleanup(prefix)
        except Exception:
            log.exception("could not remember %s for a later clean-up", prefix)


def sweep_deferred_cleanups(rt: Runtime) -> None:
    """Retry clean-ups that failed earlier (any worker's); stops at the first failure."""
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
