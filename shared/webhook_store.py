"""Webhook endpoints, signing secrets, queued messages and their delivery attempts, in Redis.

An endpoint belongs to one tenant and receives the events of that tenant it subscribed to; it has its
own signing secret, shown once when it is created. A job's own `webhook_url` is signed with the
tenant's default secret (the pseudo-endpoint `default`, whose secret the tenant can read at any time:
the URL arrives with each job, so the secret cannot be shown with it). A message is one event for one
endpoint; its id is the `webhook-id` of every attempt, so receivers can drop duplicates. Every attempt
is kept (the newest `ATTEMPTS_KEPT` per endpoint) for `GET /v1/webhooks/{id}/deliveries`.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.jobs import JobView, to_datetime, utcnow
from shared.url_guard import UrlRefused, check_syntax
from shared.voice_store import VoiceView

DEFAULT_ENDPOINT = "default"
"""The pseudo-endpoint of jobs' own `webhook_url`s: signed with the tenant's default secret."""
ENDPOINT_ID_PREFIX = "wh_"
ATTEMPTS_KEPT = 200
SECRET_BYTES = 32


class WebhookEvent(StrEnum):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    VOICE_READY = "voice.ready"
    VOICE_FAILED = "voice.failed"


class DeliveryOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    """The receiver answered 2xx."""
    FAILED = "failed"
    """Another status (a redirect included: it is not followed), a timeout or a connection error."""
    REFUSED = "refused"
    """The URL resolved to an address webhooks may not reach; nothing was sent."""


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


# --- models -----------------------------------------------------------------------------------------
class WebhookCreate(BaseModel):
    """Body of `POST /v1/webhooks`."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(..., description="http(s) URL on a public address; events are POSTed to it.")
    description: str | None = Field(None, max_length=500)
    events: list[WebhookEvent] | None = Field(
        None, min_length=1, description="Event types to receive; default: all of them."
    )

    @field_validator("url")
    @classmethod
    def _url_syntax(cls, value: str) -> str:
        try:
            check_syntax(value)
        except UrlRefused as exc:
            raise ValueError(str(exc)) from exc
        return value


class WebhookView(BaseModel):
    id: str
    url: str
    description: str | None = None
    events: list[WebhookEvent]
    created_at: datetime


class WebhookCreated(WebhookView):
    """The answer to `POST /v1/webhooks`: the only time the secret is shown."""

    secret: str = Field(..., description="Signing secret (`whsec_` + base64); shown only in this answer.")


class WebhookList(BaseModel):
    data: list[WebhookView]


class WebhookSecret(BaseModel):
    """The tenant's default signing secret, which signs deliveries to jobs' own `webhook_url`."""

    secret: str


class DeliveryAttempt(BaseModel):
    message_id: str = Field(..., description="The `webhook-id` header: the same for every attempt of one message.")
    event: WebhookEvent
    subject: str = Field(..., description="The job or voice id the event is about.")
    url: str
    attempt: int = Field(..., description="1 for the first attempt of the message, 2 for its first retry, ...")
    at: datetime
    outcome: DeliveryOutcome
    status_code: int | None = Field(None, description="The receiver's HTTP status, when it answered.")
    error: str | None = None
    duration_ms: float
    next_attempt_at: datetime | None = Field(None, description="When the next retry is due; null when final.")


class DeliveryList(BaseModel):
    """Attempts, newest first."""

    data: list[DeliveryAttempt]


class WebhookPayload(BaseModel):
    """The body of every delivery: `data` is the job (job.*) or the voice (voice.*) as the API shows it."""

    type: WebhookEvent
    timestamp: datetime = Field(..., description="When the event happened (the same on every retry).")
    data: JobView | VoiceView


@dataclass(frozen=True)
class Message:
    """One event queued for one endpoint."""

    id: str
    tenant: str
    endpoint: str
    url: str
    event: WebhookEvent
    subject: str
    body: str
    created_at: float


class EndpointLimitReached(Exception):
    pass


class WebhookStore:
    def __init__(self, client: redis.Redis, *, prefix: str, message_ttl_seconds: int) -> None:
        self._redis: Any = client  # synchronous client: replies are plain values
        self._prefix = prefix
        self._message_ttl = message_ttl_seconds

    # --- keys -------------------------------------------------------------------------------------
    def _endpoint(self, endpoint_id: str) -> str:
        return f"{self._prefix}:webhook:{endpoint_id}"

    def _endpoints(self, tenant: str) -> str:
        return f"{self._prefix}:tenant:{tenant}:webhooks"

    def _default_secret(self, tenant: str) -> str:
        return f"{self._prefix}:tenant:{tenant}:webhook-secret"

    def _attempts(self, tenant: str, endpoint_id: str) -> str:
        return f"{self._prefix}:tenant:{tenant}:webhook:{endpoint_id}:attempts"

    def _message(self, message_id: str) -> str:
        return f"{self._prefix}:webhook-message:{message_id}"

    # --- endpoints --------------------------------------------------------------------------------
    def create(self, tenant: str, spec: WebhookCreate, *, limit: int) -> WebhookCreated:
        if self._redis.scard(self._endpoints(tenant)) >= limit:
            raise EndpointLimitReached(limit)
        endpoint_id = ENDPOINT_ID_PREFIX + secrets.token_urlsafe(12)
        events = spec.events or list(WebhookEvent)
        created = WebhookCreated(
            id=endpoint_id,
            url=spec.url,
            description=spec.description,
            events=list(dict.fromkeys(events)),
            created_at=to_datetime(utcnow()),
            secret=new_secret(),
        )
        pipe = self._redis.pipeline()
        pipe.hset(
            self._endpoint(endpoint_id),
            mapping={"tenant": tenant, "view": created.model_dump_json(exclude={"secret"}), "secret": created.secret},
        )
        pipe.sadd(self._endpoints(tenant), endpoint_id)
        pipe.execute()
        return created

    def get(self, endpoint_id: str, *, tenant: str) -> WebhookView | None:
        tenant_of, raw = self._redis.hmget(self._endpoint(endpoint_id), ["tenant", "view"])
        if raw is None or tenant_of is None or tenant_of.decode() != tenant:
            return None
        return WebhookView.model_validate_json(raw)

    def list(self, tenant: str) -> list[WebhookView]:
        ids = sorted(member.decode() for member in self._redis.smembers(self._endpoints(tenant)))
        views = [view for view in (self.get(endpoint_id, tenant=tenant) for endpoint_id in ids) if view]
        return sorted(views, key=lambda view: view.created_at)

    def delete(self, endpoint_id: str, *, tenant: str) -> bool:
        if self.get(endpoint_id, tenant=tenant) is None:
            return False
        pipe = self._redis.pipeline()
        pipe.delete(self._endpoint(endpoint_id), self._attempts(tenant, endpoint_id))
        pipe.srem(self._endpoints(tenant), endpoint_id)
        pipe.execute()
        return True

    def subscribers(self, tenant: str, event: WebhookEvent) -> list[WebhookView]:
        return [view for view in self.list(tenant) if event in view.events]

    def default_secret(self, tenant: str) -> str:
        """The tenant's default secret, created on first use (and then kept)."""
        key = self._default_secret(tenant)
        self._redis.set(key, new_secret(), nx=True)
        return self._redis.get(key).decode()

    def secret_for(self, tenant: str, endpoint_id: str) -> str | None:
        """The secret that signs a message to `endpoint_id`; None when the endpoint was deleted."""
        if endpoint_id == DEFAULT_ENDPOINT:
            return self.default_secret(tenant)
        tenant_of, secret = self._redis.hmget(self._endpoint(endpoint_id), ["tenant", "secret"])
        if secret is None or tenant_of is None or tenant_of.decode() != tenant:
            return None
        return secret.decode()

    # --- messages and attempts --------------------------------------------------------------------
    def add_message(self, tenant: str, endpoint_id: str, url: str, event: WebhookEvent, subject: str, body: str) -> str:
        message_id = "msg_" + secrets.token_urlsafe(18)
        key = self._message(message_id)
        fields = {
            "tenant": tenant, "endpoint": endpoint_id, "url": url, "event": event.value, "subject": subject,
            "body": body, "created_at": repr(utcnow()), "attempts": 0,
        }  # fmt: skip
        self._redis.hset(key, mapping=fields)
        self._redis.expire(key, self._message_ttl)
        return message_id

    def message(self, message_id: str) -> Message | None:
        raw = {k.decode(): v.decode() for k, v in self._redis.hgetall(self._message(message_id)).items()}
        if not raw:
            return None
        return Message(
            id=message_id,
            tenant=raw["tenant"],
            endpoint=raw["endpoint"],
            url=raw["url"],
            event=WebhookEvent(raw["event"]),
            subject=raw["subject"],
            body=raw["body"],
            created_at=float(raw["created_at"]),
        )

    def next_attempt(self, message_id: str) -> int:
        """Count an attempt of the message; returns its number (1 for the first)."""
        return int(self._redis.hincrby(self._message(message_id), "attempts", 1))

    def record_attempt(self, message: Message, attempt: DeliveryAttempt) -> None:
        key = self._attempts(message.tenant, message.endpoint)
        pipe = self._redis.pipeline()
        pipe.lpush(key, attempt.model_dump_json())
        pipe.ltrim(key, 0, ATTEMPTS_KEPT - 1)
        pipe.expire(key, self._message_ttl * 7)
        pipe.execute()

    def attempts(self, tenant: str, endpoint_id: str, *, subject: str | None = None) -> list[DeliveryAttempt]:
        rows = [
            DeliveryAttempt.model_validate_json(raw)
            for raw in self._redis.lrange(self._attempts(tenant, endpoint_id), 0, -1)
        ]
        return [row for row in rows if subject is None or row.subject == subject]


def message_body(event: WebhookEvent, data: dict[str, Any]) -> str:
    """The JSON body of an event (Standard Webhooks' recommended `type`, `timestamp`, `data`)."""
    stamp = to_datetime(utcnow()).isoformat().replace("+00:00", "Z")  # as the API writes times
    payload = {"type": event.value, "timestamp": stamp, "data": data}
    return json.dumps(payload, separators=(",", ":"))
