"""What one process talks to, built once from settings: Redis, the job and voice stores, storage, and
the two ways to queue work.

The API keeps one `Services` for its life; a worker's `Runtime` is one plus the loaded engine. Both
stores share one Redis client (one connection pool), and nothing outside a store reaches into its
Redis keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import redis
from celery import Celery

from shared.downloads import Links, links_for
from shared.queue import CLONE_VOICE_TASK, DELIVER_WEBHOOK_TASK, SYNTHESIZE_TASK, make_celery
from shared.settings import Settings
from shared.storage import Storage, storage_from_settings
from shared.store import JobStore
from shared.usage import UsageStore
from shared.voice_store import VoiceStore
from shared.webhook_store import WebhookStore

Enqueue = Callable[[str], None]
"""Sends one id (a job's or a voice's) to its task's queue by task name."""


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    voices: VoiceStore
    storage: Storage
    enqueue_job: Enqueue
    """Queues a synthesis job (`narrate.synthesize`) on `queue_name`."""
    enqueue_clone: Enqueue
    """Queues a voice for cloning (`narrate.clone_voice`) on `voice_queue_name`."""
    webhooks: WebhookStore
    usage: UsageStore
    enqueue_webhook: Enqueue
    """Queues a webhook message for delivery (`narrate.deliver_webhook`) on `webhook_queue_name`."""
    links: Links = field(init=False)
    """Mints download links to `storage` (`shared.downloads.mint_view`)."""

    def __post_init__(self) -> None:
        self.links = links_for(self)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, client_name: str = "narrate", storage_retry_seconds: float | None = None
    ) -> Services:
        """Nothing connects yet: Redis, the broker and S3 are reached on first use. The Celery client is
        built on the first send, so a worker process (which never sends) holds no second Celery app."""
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)

        @cache
        def celery() -> Celery:
            return make_celery(settings, client_name)

        return cls(
            settings=settings,
            redis=client,
            jobs=JobStore(client, prefix=settings.key_prefix, retention_seconds=settings.job_retention_seconds),
            voices=VoiceStore(client, prefix=settings.key_prefix),
            storage=storage_from_settings(settings, retry_seconds=storage_retry_seconds),
            enqueue_job=_sender(celery, SYNTHESIZE_TASK, settings.queue_name),
            enqueue_clone=_sender(celery, CLONE_VOICE_TASK, settings.voice_queue_name),
            webhooks=WebhookStore(
                client,
                prefix=settings.key_prefix,
                message_ttl_seconds=int(settings.webhook_retry_window_seconds) + 86400,
            ),
            usage=UsageStore(
                client,
                prefix=settings.key_prefix,
                retention_days=settings.usage_retention_days,
                job_retention_seconds=settings.job_retention_seconds,
            ),
            enqueue_webhook=_sender(celery, DELIVER_WEBHOOK_TASK, settings.webhook_queue_name),
        )


def _sender(celery: Callable[[], Celery], task: str, queue: str) -> Enqueue:
    def send(item_id: str) -> None:
        celery().send_task(task, args=[item_id], queue=queue)

    return send
