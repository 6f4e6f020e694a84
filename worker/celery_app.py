"""The Celery worker: `celery -A worker.celery_app:app worker -Q narrate,narrate-voices --pool threads
--concurrency N` (N = `NARRATE_WORKER_UNITS`), one process per GPU.

Each thread runs one unit at a time (`narrate.work`: take the best ready unit, run it); all of them feed
the process's one engine, loaded once when the worker starts (worker_init), never at import time, so the
engine's continuous batch mixes the chunks of every unit running here. A sweeper thread per process
gives expired or stalled units back and keeps tokens in the queue (`worker.sweeper`). Tokens are
acknowledged as they start: a dead worker's units come back through their leases, not redelivery, so no
Celery time limit applies. SIGTERM makes running speak units checkpoint and hand their units back.
Metrics are served on `NARRATE_WORKER_METRICS_PORT` (a multiprocess directory, for the assembly pool's
children and the voice clone's).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TypeVar

from celery import signals
from celery.exceptions import Reject, Retry

# Must be decided before prometheus_client is imported anywhere in this process or its children, and a
# given directory emptied before this process creates its own value files (a previous run's values would
# be merged in otherwise).
_OWN_METRICS_DIR: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="narrate-worker-metrics-")
else:
    for _name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
        _path = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], _name)
        shutil.rmtree(_path) if os.path.isdir(_path) else os.remove(_path)

from shared import metrics  # noqa: E402
from shared.queue import CLONE_VOICE_TASK, WORK_TASK, make_celery  # noqa: E402
from shared.settings import get_settings  # noqa: E402

log = logging.getLogger(__name__)
T = TypeVar("T")

settings = get_settings()
app = make_celery(settings, "narrate-worker")


@signals.worker_init.connect
def _start_metrics_server(**_: object) -> None:
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr="0.0.0.0", registry=metrics.scrape_registry())
        log.info("worker metrics on port %d", settings.worker_metrics_port)


@signals.worker_shutdown.connect
def _remove_metrics_dir(**_: object) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)


@signals.worker_init.connect
def _load_engine(**_: object) -> None:
    """Load the engine before the worker consumes (a thread pool: this process is the one that runs
    units), then start its sweeper."""
    from worker.runtime import get_runtime
    from worker.sweeper import start_sweeper

    runtime = get_runtime()
    runtime.engine.warm_up()
    start_sweeper(runtime)


@signals.worker_shutting_down.connect
def _hand_units_back(**_: object) -> None:
    from worker.units_runner import SHUTTING_DOWN

    log.info("shutting down: running speak units checkpoint and hand their units back")
    SHUTTING_DOWN.set()


def _requeue_on_error(work: Callable[[], T]) -> T:
    """Run a task body; an error it did not handle itself (Redis or storage unreachable mid-claim, say)
    hands the message back to the queue. With acks_late and acks_on_failure_or_timeout off, Celery would
    otherwise drop it and leave the job `running` for good; every delivery counts as an attempt, so the
    attempt cap still ends a job that fails this way every time."""
    try:
        return work()
    except Retry:
        raise
    except Exception as exc:
        log.exception("task failed before it could record an outcome; requeueing")
        raise Reject(exc, requeue=True) from exc


@app.task(name=WORK_TASK, acks_late=False, ignore_result=True)
def work() -> str:
    """One token: take a unit and run it. Errors of the unit are its job's (worker.outcomes); one that
    escapes (Redis unreachable at the take) only loses a token, which the sweeper tops up."""
    from worker.runtime import get_runtime
    from worker.units_runner import run_token

    return run_token(get_runtime())


@app.task(name=CLONE_VOICE_TASK)
def clone_voice(voice_id: str) -> str | None:
    from worker.cloning import run_clone
    from worker.runtime import get_runtime

    return _requeue_on_error(lambda: run_clone(voice_id, get_runtime()))
