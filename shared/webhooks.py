"""Emitting events: one call where a job or a voice reaches a final state queues its webhook messages.

`emit_job_event` / `emit_voice_event` build the event's body once (so every attempt sends the same
event), store one message per receiving endpoint (the tenant's endpoints subscribed to the event, and
the job's own `webhook_url`) and queue each for the delivery task. They are called by the process that
made the transition, after it, and never raise: the job or voice has already ended, and a lost event
must not turn into a failed job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.downloads import mint_view, mint_voice_view
from shared.jobs import JobStatus
from shared.voice_store import VoiceStatus
from shared.webhook_store import DEFAULT_ENDPOINT, WebhookEvent, message_body

if TYPE_CHECKING:
    from shared.services import Services

log = logging.getLogger(__name__)

JOB_EVENTS = {
    JobStatus.SUCCEEDED: WebhookEvent.JOB_SUCCEEDED,
    JobStatus.FAILED: WebhookEvent.JOB_FAILED,
    JobStatus.CANCELED: WebhookEvent.JOB_CANCELED,
}
VOICE_EVENTS = {VoiceStatus.READY: WebhookEvent.VOICE_READY, VoiceStatus.FAILED: WebhookEvent.VOICE_FAILED}


def job_event_payload(services: Services, job_id: str) -> tuple[str, WebhookEvent, dict[str, Any]] | None:
    """(tenant, event, data) of a finished job; data is the job as `GET /v1/jobs/{id}` returns it.

    The one place an event's job is rendered: result URLs minted for the API's answer are minted here
    the same way (they are valid `NARRATE_S3_PRESIGN_EXPIRY_SECONDS` from the event)."""
    view = services.jobs.view(job_id)
    tenant = services.jobs.tenant_of(job_id)
    if view is None or tenant is None or view.status not in JOB_EVENTS:
        return None
    linked = mint_view(services, view, base_url=services.settings.public_url or "")
    return tenant, JOB_EVENTS[view.status], linked.model_dump(mode="json")


def voice_event_payload(services: Services, voice_id: str) -> tuple[str, WebhookEvent, dict[str, Any]] | None:
    """(tenant, event, data) of a voice that is ready or failed; data as `GET /v1/voices/{id}`."""
    record = services.voices.get(voice_id, tenant=None)
    if record is None or record.status not in VOICE_EVENTS:
        return None
    view = mint_voice_view(services, record, base_url=services.settings.public_url or "")
    return record.tenant, VOICE_EVENTS[record.status], view.model_dump(mode="json")


def emit_job_event(services: Services, job_id: str) -> list[str]:
    """Queue the final event of `job_id` to its tenant's endpoints and its `webhook_url`; the message ids."""
    try:
        found = job_event_payload(services, job_id)
        if found is None:
            return []
        tenant, event, data = found
        own_url = data.get("webhook_url")
        return _emit(services, tenant, event, job_id, data, [(DEFAULT_ENDPOINT, own_url)] if own_url else [])
    except Exception:
        log.exception("job %s: could not queue its webhook event", job_id)
        return []


def emit_voice_event(services: Services, voice_id: str) -> list[str]:
    """Queue `voice.ready` / `voice.failed` of `voice_id` to its tenant's endpoints; the message ids."""
    try:
        found = voice_event_payload(services, voice_id)
        if found is None:
            return []
        tenant, event, data = found
        return _emit(services, tenant, event, voice_id, data, [])
    except Exception:
        log.exception("voice %s: could not queue its webhook event", voice_id)
        return []


def _emit(
    services: Services,
    tenant: str,
    event: WebhookEvent,
    subject: str,
    data: dict[str, Any],
    extra: list[tuple[str, str]],
) -> list[str]:
    store = services.webhooks
    targets = [(endpoint.id, endpoint.url) for endpoint in store.subscribers(tenant, event)] + extra
    if not targets:
        return []
    body = message_body(event, data)
    sent: list[str] = []
    for endpoint_id, url in targets:
        message_id = store.add_message(tenant, endpoint_id, url, event, subject, body)
        services.enqueue_webhook(message_id)
        sent.append(message_id)
    log.info("%s %s: queued %d webhook message(s)", event.value, subject, len(sent))
    return sent
