"""The Celery configuration both sides agree on: broker, queue, task name, delivery guarantees.

The API only sends by task name (it never imports the worker), so the name and the routing live here.
"""

from __future__ import annotations

from celery import Celery

from shared.settings import Settings

SYNTHESIZE_TASK = "narrate.synthesize"
WORK_TASK = "narrate.work"
"""A token, no arguments: the worker thread that receives it takes one ready unit (`UnitStore.take`)."""
CLONE_VOICE_TASK = "narrate.clone_voice"
DELIVER_WEBHOOK_TASK = "narrate.deliver_webhook"


def worker_queues(settings: Settings) -> str:
    """The `-Q` of a synthesis worker: jobs and, between them, voices (Celery takes from both in turn),
    so a deployment without a voices-only worker still clones."""
    return f"{settings.queue_name},{settings.voice_queue_name}"


def make_celery(settings: Settings, name: str) -> Celery:
    app = Celery(name, broker=settings.redis_url)
    app.conf.update(
        task_default_queue=settings.queue_name,
        task_routes={
            SYNTHESIZE_TASK: {"queue": settings.queue_name},
            WORK_TASK: {"queue": settings.queue_name},
            CLONE_VOICE_TASK: {"queue": settings.voice_queue_name},
            DELIVER_WEBHOOK_TASK: {"queue": settings.webhook_queue_name},
        },
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # A job is acknowledged only when it ended; a worker that dies mid-job gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A hard time limit or a task error is not acknowledged either: the job is given back to the
        # queue and then resumes or is failed by the attempt cap, instead of being dropped.
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_hard_time_limit_seconds,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            # Sweep for messages of dead workers often enough that a job is redelivered soon after its
            # visibility timeout, not up to 100 s later (kombu's default interval x throttle).
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_seconds // 10)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
    )
    return app
