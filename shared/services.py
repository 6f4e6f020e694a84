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
from redis.sentinel import Sentinel

from shared.downloads import Links, links_for
from shared.lexicon_store import LexiconStore
from shared.queue import CLONE_VOICE_TASK, DELIVER_WEBHOOK_TASK, WORK_TASK, make_celery
from shared.settings import Settings, sentinel_auth
from shared.storage import Storage, storage_from_settings
from shared.store import JobStore
from shared.units import UnitStore
from shared.usage import UsageStore
from shared.voice_store import VoiceStore
from shared.webhook_store import WebhookStore

Enqueue = Callable[[str], None]
"""Sends one id (a job's or a voice's) to its task's queue by task name."""
EnqueueWork = Callable[[int], None]
"""Sends n work tokens (`narrate.work`, no arguments) to `queue_name`."""


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    units: UnitStore
    """The scheduler of every job's units (plan, speak, assemble) and their leases."""
    voices: VoiceStore
    storage: Storage
    enqueue_work: EnqueueWork
    """Sends n work tokens (`narrate.work`) on `queue_name`: one per unit made ready."""
    enqueue_job: Enqueue
    """After a job is created: one work token for its plan unit (the job id is not sent; the token's
    receiver takes the best ready unit, whichever job's it is)."""
    enqueue_clone: Enqueue
    """Queues a voice for cloning (`narrate.clone_voice`) on `voice_queue_name`."""
    webhooks: WebhookStore
    usage: UsageStore
    lexicons: LexiconStore
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
        client = redis_client(settings)

        @cache
        def celery() -> Celery:
            return make_celery(settings, client_name)

        jobs = JobStore(client, prefix=settings.key_prefix, retention_seconds=settings.job_retention_seconds)
        units = UnitStore(
            client, prefix=settings.key_prefix, retention_seconds=settings.job_retention_seconds, jobs=jobs
        )
        enqueue_work = _work_sender(celery, settings.queue_name)
        return cls(
            settings=settings,
            redis=client,
            jobs=jobs,
            units=units,
            voices=VoiceStore(client, prefix=settings.key_prefix),
            storage=storage_from_settings(settings, retry_seconds=storage_retry_seconds),
            enqueue_work=enqueue_work,
            enqueue_job=lambda _job_id: enqueue_work(1),
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
            lexicons=LexiconStore(client, prefix=settings.key_prefix),
        )


def redis_client(settings: Settings) -> redis.Redis:
    """The process's Redis: the URL's server, or with `sentinel://` whichever server the sentinels name
    primary now (asked again on every new connection, so a failover needs no restart)."""
    hosts = settings.redis_sentinels
    if hosts is None:
        return redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    password, db = sentinel_auth(settings.redis_url)
    sentinel = Sentinel(hosts, socket_timeout=5)
    return sentinel.master_for(
        settings.redis_sentinel_master, db=db, password=password, socket_timeout=30, health_check_interval=30
    )


def limits_storage(settings: Settings) -> tuple[str, dict[str, str | int]]:
    """The `limits` storage URI and options of the rate limits: the same Redis (through Sentinel too)."""
    hosts = settings.redis_sentinels
    if hosts is None:
        return settings.redis_url, {}
    password, db = sentinel_auth(settings.redis_url)
    where = ",".join(f"{host}:{port}" for host, port in hosts)
    options: dict[str, str | int] = {"db": db, **({"password": password} if password else {})}
    return f"redis+sentinel://{where}/{settings.redis_sentinel_master}", options


def _work_sender(celery: Callable[[], Celery], queue: str) -> EnqueueWork:
    def send(n: int = 1) -> None:
        app = celery()
        with app.producer_or_acquire() as producer:  # one connection for all n
            for _ in range(n):
                app.send_task(WORK_TASK, queue=queue, producer=producer)

    return send


def _sender(celery: Callable[[], Celery], task: str, queue: str) -> Enqueue:
    def send(item_id: str) -> None:
        celery().send_task(task, args=[item_id], queue=queue)

    return send
