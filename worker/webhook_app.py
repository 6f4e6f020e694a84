"""The webhooks worker: `celery -A worker.webhook_app:app worker -Q narrate-webhooks --pool threads`.

Its own Celery app and process, apart from the GPU workers: deliveries are network waits (a thread
pool suits them), it loads no engine, and a retry counting down its back-off is held by this worker,
never by a GPU worker that may be hours into a book. One `Services` per process, built on first use.
"""

from __future__ import annotations

from functools import cache

from celery import Task, signals

from shared.queue import DELIVER_WEBHOOK_TASK, make_celery
from shared.services import Services
from shared.settings import get_settings

settings = get_settings()
app = make_celery(settings, "narrate-webhooks")
app.conf.task_default_queue = settings.webhook_queue_name


@signals.worker_init.connect
def _start_metrics_server(**_: object) -> None:
    """One process (a thread pool), so its own registry is the whole story: no multiprocess directory."""
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        from shared import metrics

        start_http_server(settings.worker_metrics_port, addr="0.0.0.0", registry=metrics.scrape_registry())


@cache
def services() -> Services:
    return Services.from_settings(get_settings(), client_name="narrate-webhooks")


@app.task(name=DELIVER_WEBHOOK_TASK, bind=True, max_retries=None)
def deliver_webhook(self: Task, message_id: str) -> None:
    from worker.webhooks import deliver

    retry_in = deliver(services(), message_id)
    if retry_in is not None:
        # The same message id again, after the back-off (the attempt count lives in Redis).
        raise self.retry(countdown=retry_in)
