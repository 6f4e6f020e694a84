"""The Celery worker: `celery -A worker.celery_app:app worker -Q narrate,narrate-voices --concurrency 1`.

One prefork child per GPU. The engine is loaded in the child after the fork (worker_process_init), never
at import time, and kept for the process's life. Metrics of the child are written to a multiprocess
directory and served by the parent on `NARRATE_WORKER_METRICS_PORT`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TypeVar

from celery import Task, signals
from celery.exceptions import Reject, Retry

# Must be decided before prometheus_client is imported anywhere in this process or its children.
_OWN_METRICS_DIR: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="narrate-worker-metrics-")

from shared import metrics  # noqa: E402
from shared.queue import CLONE_VOICE_TASK, SYNTHESIZE_TASK, make_celery  # noqa: E402
from shared.settings import get_settings  # noqa: E402

log = logging.getLogger(__name__)
T = TypeVar("T")

settings = get_settings()
app = make_celery(settings, "narrate-worker")
# Loading a GPU model takes longer than Celery's default 4 s allowance for a new child.
app.conf.worker_proc_alive_timeout = 900


@signals.worker_init.connect
def _start_metrics_server(**_: object) -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(directory):  # values of a previous run would be merged in otherwise
        path = os.path.join(directory, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr="0.0.0.0", registry=metrics.scrape_registry())
        log.info("worker metrics on port %d", settings.worker_metrics_port)


@signals.worker_shutdown.connect
def _remove_metrics_dir(**_: object) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)


@signals.worker_process_init.connect
def _load_engine(**_: object) -> None:
    from worker.runtime import get_runtime
    from worker.sweeper import start_sweeper

    runtime = get_runtime()
    runtime.engine.warm_up()
    start_sweeper(runtime.services)


@signals.worker_process_shutdown.connect
def _mark_dead(pid: int | None = None, **_: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())


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


@app.task(name=SYNTHESIZE_TASK, bind=True, max_retries=None)
def synthesize(self: Task, job_id: str) -> str | None:
    from worker.pipeline import RetryLater, run_job
    from worker.runtime import get_runtime

    def work() -> str | None:
        try:
            status = run_job(job_id, get_runtime())
        except RetryLater as later:
            # Celery re-sends the message with a countdown, then acknowledges this one (a failed send
            # raises something else, and the message is handed back by _requeue_on_error).
            log.info("job %s: %s; delivering it again in %.1f s", job_id, later, later.seconds)
            raise self.retry(countdown=later.seconds, max_retries=None) from None
        return status.value if status else None

    return _requeue_on_error(work)


@app.task(name=CLONE_VOICE_TASK)
def clone_voice(voice_id: str) -> str | None:
    from worker.cloning import run_clone
    from worker.runtime import get_runtime

    return _requeue_on_error(lambda: run_clone(voice_id, get_runtime()))
