"""The sweeper thread of a worker process: units back to the queue, tokens topped up, storage tidied.

Every `NARRATE_SWEEP_SECONDS` (default a third of the lease), under a short Redis lock so one process of
the fleet sweeps at a time: `UnitStore.sweep` makes units ready again whose lease ran out (their holder
died or hung), that made no chunk progress for `NARRATE_UNIT_STALL_SECONDS`, or whose hand-back delay
is over, and a token is sent for each; when ready units still outnumber the tokens waiting in the
queue (tokens lost with a dead worker's prefetch, say), the difference is sent. Clean-ups that storage
refused earlier are retried here, and on a local storage directory the retention sweep deletes expired
results and checkpoints every `NARRATE_STORAGE_SWEEP_INTERVAL_SECONDS` (S3's lifecycle rule does that
there). What the retention sweep deletes, and what never, is `shared.retention`'s.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from shared.retention import sweep_expired
from shared.storage import LocalStorage

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


def sweep_seconds(rt: Runtime) -> float:
    configured = rt.settings.sweep_seconds
    return configured if configured else rt.settings.lease_seconds / 3


def sweep_units(rt: Runtime, *, now: float | None = None) -> int:
    """One sweep (if no other process holds the sweep lock); returns how many tokens it sent."""
    settings = rt.settings
    lock = rt.services.redis.lock(
        f"{settings.key_prefix}:units:sweep-lock", timeout=max(1.0, sweep_seconds(rt)), blocking=False
    )
    if not lock.acquire(blocking=False):
        return 0
    try:
        sent = rt.units.sweep(stall_seconds=settings.unit_stall_seconds, now=now)
        ready = sum(rt.units.ready_counts().values())
        client: Any = rt.services.redis  # synchronous: replies are plain values
        waiting = int(client.llen(settings.queue_name))  # tokens in the queue (Celery's list of the queue)
        sent = max(sent, ready - waiting)
        if sent > 0:
            rt.services.enqueue_work(sent)
        return sent
    finally:
        with contextlib.suppress(Exception):  # expired meanwhile: another process may sweep; nothing to undo
            lock.release()


def start_sweeper(rt: Runtime) -> threading.Thread:
    """A daemon thread sweeping for the life of the process."""
    from worker.outcomes import sweep_deferred_cleanups

    retention_every = rt.settings.storage_sweep_interval_seconds
    retention = retention_every > 0 and isinstance(rt.storage, LocalStorage)

    def loop() -> None:
        next_retention = time.monotonic()
        while True:  # a daemon thread: it ends with its process
            try:
                sweep_units(rt)
            except Exception:  # Redis away for a while: try again next time
                log.warning("unit sweep failed", exc_info=True)
            sweep_deferred_cleanups(rt)
            if retention and time.monotonic() >= next_retention:
                next_retention = time.monotonic() + retention_every
                try:
                    sweep_expired(rt.storage, retention_seconds=rt.settings.job_retention_seconds)
                except Exception:  # storage down for a while: try again next time
                    log.exception("retention sweep failed")
            time.sleep(sweep_seconds(rt))

    thread = threading.Thread(target=loop, name="narrate-sweeper", daemon=True)
    thread.start()
    return thread
