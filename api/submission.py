"""Turning a raw request into a queued job, or into an error that leaves nothing behind."""

from __future__ import annotations

import hashlib
from typing import Any

from api import json_body
from api.errors import ApiError, validate_body
from shared.jobs import JobCreate
from shared.services import Enqueue, Services
from shared.settings import Settings
from shared.store import IdempotencyConflict, JobStore
from shared.voices import builtin_voice_ids


def parse_json_body(raw: bytes, content_type: str | None) -> Any:
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the job as JSON with Content-Type: application/json.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_encoding", f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    return json_body.loads(text)


def validate_job(payload: Any, settings: Settings, known_voices: set[str]) -> JobCreate:
    spec = validate_body(JobCreate, payload)
    if len(spec.inputs) > settings.max_inputs:
        raise ApiError(413, "too_many_inputs", f"At most {settings.max_inputs} inputs per job.", "inputs")
    if spec.total_chars() > settings.max_text_chars:
        raise ApiError(
            413, "text_too_long",
            f"The job has {spec.total_chars()} characters; the maximum is {settings.max_text_chars}.", "inputs",
        )  # fmt: skip
    for index, item in enumerate(spec.inputs):
        voice = item.voice
        if voice is not None and voice not in known_voices:
            raise ApiError(422, "unknown_voice", f"Unknown voice {voice!r}.", f"inputs.{index}.voice")
    if spec.voice is not None and spec.voice not in known_voices:
        raise ApiError(422, "unknown_voice", f"Unknown voice {spec.voice!r}; see GET /v1/voices.", "voice")
    return spec


def body_hash(spec: JobCreate) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def known_voices(services: Services, tenant: str) -> set[str]:
    """Built-in voices and language tags of the engine, and the tenant's own ready cloned voices."""
    published = services.jobs.engine_info()
    return builtin_voice_ids(services.settings.engine, published) | services.voices.ready_ids(tenant)


def submit(
    store: JobStore, enqueue: Enqueue, tenant: str, spec: JobCreate, idempotency_key: str | None
) -> tuple[str, bool]:
    """Store and enqueue; if enqueueing fails the record is removed again, so nothing is half-done."""
    digest = body_hash(spec)
    try:
        job_id, created = store.create(tenant, spec, body_hash=digest, idempotency_key=idempotency_key)
    except IdempotencyConflict as exc:
        raise ApiError(
            409, "idempotency_conflict", "This Idempotency-Key was used with a different request body.",
        ) from exc  # fmt: skip
    if not created:
        return job_id, False
    try:
        enqueue(job_id)
    except Exception as exc:
        store.delete(job_id, idempotency=(tenant, idempotency_key) if idempotency_key else None)
        raise ApiError(503, "queue_unavailable", "The job queue is unreachable; nothing was stored.") from exc
    return job_id, True
