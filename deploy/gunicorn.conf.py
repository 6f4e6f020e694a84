"""gunicorn settings of the API (`gunicorn -c deploy/gunicorn.conf.py api.wsgi:app`).

Command-line flags (`--bind`, `--workers`) and GUNICORN_CMD_ARGS override these. The hook tells
prometheus-client's multiprocess mode that a worker died, so its live gauges are dropped.

The worker class (deploy/gunicorn_worker.py) is gevent: each connection is a greenlet, so clients that
send slowly hold no thread; it buffers each request body within NARRATE_REQUEST_BODY_TIMEOUT_SECONDS
(408 after) and NARRATE_MAX_BODY_BYTES (413 above) before the application runs, and answers gunicorn's
own errors (414, 431, 400) in the API's JSON error shape. No reverse proxy is needed in front for that.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

bind = "0.0.0.0:8080"
worker_class = "deploy.gunicorn_worker.ApiWorker"
worker_connections = 1000  # open connections per worker process (slow or idle ones included)
keepalive = 5  # seconds an idle connection stays open; also the limit for sending a request's headers
# Request line and headers (414 / 431 above; a body is bounded by NARRATE_MAX_BODY_BYTES instead).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
timeout = 60
graceful_timeout = 20
accesslog = "-"


def child_exit(server: Arbiter, worker: Worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
