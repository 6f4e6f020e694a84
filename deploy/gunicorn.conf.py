"""gunicorn settings of the API (`gunicorn -c deploy/gunicorn.conf.py api.wsgi:app`).

Command-line flags (`--bind`, `--workers`) and GUNICORN_CMD_ARGS override these. The hook tells
prometheus-client's multiprocess mode that a worker died, so its live gauges are dropped.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

bind = "0.0.0.0:8080"
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = 20
accesslog = "-"


def child_exit(server: Arbiter, worker: Worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
