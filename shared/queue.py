"""The Celery configuration both sides agree on: broker, queue, task name, delivery guarantees.

The API only sends by task name (it never imports the worker), so the name and the routing live here.
"""

from __future__ import annotations

from celery import Celery

from shared.settings import Settings

WORK_TASK = "narrate.work"
"""A token, no arguments: the worker thread that receives it takes one ready unit (`UnitStore.take`)."""
CLONE_VOICE_TASK = "narrate.clone_voice"
DELIVER_WEBHOOK_TASK = "narrate.deliver_webhook"


def worker_queues(settings: Settings) -> str:
    """The `-Q` of a synthesis worker: jobs and, between them, voices (Celery takes from both in turn),
    so a deployment without a voices-only worker still clones."""
    return f"{settings.queue_name},{settings.voice_queue_name}"


def worker_args(settings: Settings, queues: str | None = None) -> list[str]:
    """`celery` arguments of a synthesis worker process (one per GPU): a thread per unit it runs at once
    (`NARRATE_WORKER_UNITS`), all feeding its one engine."""
    return [
        "-A", "worker.celery_app:app", "worker", "-Q", queues or worker_queues(settings),
        "--pool", "threads", "--concurrency", str(settings.worker_units),
    ]  # fmt: skip


def make_celery(settings: Settings, name: str) -> Celery:
    app = Celery(name, broker=settings.redis_url)
    app.conf.update(
        task_default_queue=settings.queue_name,
        task_routes={
            WORK_TASK: {"queue": settings.queue_name},
            CLONE_VOICE_TASK: {"queue": settings.voice_queue_name},
            DELIVER_WEBHOOK_TASK: {"queue": settings.webhook_queue_name},
        },
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # A voice clone is acknowledged only when it ended; a worker that dies mid-clone gives it back
        # (an error too: given back, not dropped). Work tokens opt out (`acks_late=False` on the task):
        # units are recovered by their leases, so no time limit or visibility timeout bounds a unit.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            # Sweep for messages of dead workers often enough that a job is redelivered soon after its
            # visibility timeout, not up to 100 s later (kombu's default interval x throttle).
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_seconds // 10)),
            "unacked_restore_throttle": 1,
            # With a `sentinel://` broker URL: the primary kombu asks the sentinels for.
            **({"master_name": settings.redis_sentinel_master} if settings.redis_sentinels else {}),
        },
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
    )
    return app
