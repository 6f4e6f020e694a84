"""One token's work: take the best ready unit (`UnitStore.take`), hold its lease while it runs, end it.

A token carries nothing: whichever unit the scheduler picks (priority, tenant fair share, oldest job
first) is the one this thread runs, so a duplicate token, or one whose unit another worker already
took, simply finds other work or none. A unit's lease is renewed every third of
`NARRATE_LEASE_SECONDS` while it runs; every write of the unit is fenced by its token, so a holder
that stalled past its lease and was replaced stops at its next write (`LeaseLost`) and touches
nothing of the job. How each failure ends the job is `worker.outcomes`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures.process import BrokenProcessPool

from shared.input_languages import LanguageRefused
from shared.jobs import JobStatus
from shared.lease import LeaseKeeper, LeaseLost
from shared.storage import StorageError, StorageUnavailable
from shared.units import ALL_KINDS, Exhausted, UnitClaim, UnitKind
from worker import outcomes
from worker.assemble_unit import run_assemble
from worker.engines.base import EngineError
from worker.outcomes import Stopped
from worker.plan_unit import run_plan
from worker.runtime import Runtime
from worker.speak_unit import ShuttingDown, run_speak
from worker.voice_embeddings import VoiceUnavailable

log = logging.getLogger(__name__)

SHUTTING_DOWN = threading.Event()
"""Set when the worker process is told to stop (SIGTERM): running speak units checkpoint and hand back."""


def run_token(rt: Runtime, *, kinds: frozenset[UnitKind] = ALL_KINDS) -> str:
    """Take one unit and run it; returns what happened (for the log and tests): "idle" (nothing was
    ready), "exhausted", or the unit's kind and outcome, e.g. "speak:done"."""
    settings = rt.settings
    if SHUTTING_DOWN.is_set():
        return "idle"  # leave it to a worker that stays; the token is not needed (sweeps top tokens up)
    got = rt.units.take(lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts, kinds=kinds)
    if got is None:
        return "idle"
    if isinstance(got, Exhausted):
        outcomes.exhausted(rt, got)
        return "exhausted"
    log.info("job %s: %s unit %d taken (attempt %d)", got.job_id, got.kind, got.unit, got.attempts)
    keeper = LeaseKeeper(lambda: rt.units.renew(got, settings.lease_seconds), period=settings.lease_seconds / 3)
    with keeper:
        outcome = run_unit(got, rt)
    log.info("job %s %s unit %d (attempt %d): %s", got.job_id, got.kind, got.unit, got.attempts, outcome)
    return f"{got.kind}:{outcome}"


def run_unit(claim: UnitClaim, rt: Runtime) -> str:
    """Run a claimed unit to its end; every exception becomes an outcome of the unit or of its job."""
    try:
        if claim.kind == UnitKind.PLAN:
            return f"{run_plan(claim, rt)} units"
        if claim.kind == UnitKind.SPEAK:
            outcome = run_speak(claim, rt, SHUTTING_DOWN)
            if outcome == "assemble":
                rt.services.enqueue_work(1)
            return outcome
        run_assemble(claim, rt)
        return JobStatus.SUCCEEDED.value
    except LeaseLost:
        log.warning("job %s: %s unit %d was taken over; this holder stops", claim.job_id, claim.kind, claim.unit)
        return "lease lost"
    except Stopped:
        return outcomes.stopped(rt, claim).value
    except ShuttingDown:
        _hand_back(rt, claim, reason="The worker holding this unit shut down.", code="worker_lost")
        return "handed back"
    except BrokenProcessPool:
        if claim.attempts < rt.settings.max_attempts:
            _hand_back(rt, claim, reason="The assembly process died.", code="worker_lost")
            return "handed back"
        return _fail(rt, claim, "worker_lost", f"The assembly process died {claim.attempts} times.")
    except StorageUnavailable as exc:
        if claim.attempts < rt.settings.max_attempts:
            delay = rt.settings.storage_requeue_seconds * 2 ** (claim.attempts - 1)
            log.warning(
                "job %s: storage unavailable (%s); unit %d again in %.0f s", claim.job_id, exc, claim.unit, delay
            )
            message = f"Storage stayed unreachable through {claim.attempts} attempts: {exc}"
            _hand_back(rt, claim, reason=message, code="storage_unavailable", delay_seconds=delay)
            return "handed back"
        message = f"Storage stayed unreachable through {claim.attempts} attempts: {exc}"
        return _fail(rt, claim, "storage_unavailable", message)
    except StorageError as exc:
        log.exception("job %s: storage refused an operation", claim.job_id)
        return _fail(rt, claim, "storage_error", str(exc))
    except (VoiceUnavailable, LanguageRefused) as exc:
        return _fail(rt, claim, exc.code, str(exc))
    except EngineError as exc:
        return _fail(rt, claim, exc.code, str(exc))
    except Exception as exc:
        log.exception("job %s: %s unit %d failed", claim.job_id, claim.kind, claim.unit)
        return _fail(rt, claim, "internal_error", f"{type(exc).__name__}: {exc}")


def _fail(rt: Runtime, claim: UnitClaim, code: str, message: str) -> str:
    try:
        return outcomes.fail(rt, claim, code, message).value
    except LeaseLost:
        return "lease lost"


def _hand_back(rt: Runtime, claim: UnitClaim, *, reason: str, code: str, delay_seconds: float = 0.0) -> None:
    try:
        rt.units.hand_back(claim, reason=reason, code=code, delay_seconds=delay_seconds)
    except LeaseLost:
        pass  # another holder has it already
    except Exception:
        log.warning("job %s: could not hand unit %d back (its lease expires by itself)", claim.job_id, claim.unit)
