"""OpenAI-compatible speech: `POST /v1/audio/speech`, `GET /v1/audio/voices`, `GET /v1/models`.

The text runs as an interactive-priority job through the same queue, workers, quota and usage as
`POST /v1/jobs`; the view waits for it (a greenlet under the API's gevent worker, so waiting holds no
thread) and answers the whole file. Errors on these routes are in OpenAI's shape
(`{"error": {"message", "type", "param", "code"}}`), which OpenAI's client libraries read.
"""

from __future__ import annotations

import io
import logging
import time

import numpy as np
import soundfile as sf
from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from api.context import services
from api.errors import STORE_UNREACHABLE, ApiError, validate_body
from api.submission import known_voices, parse_json_body, submit
from shared import metrics
from shared.audio.formats import AudioFormat
from shared.jobs import JobCreate, JobPriority, JobStatus
from shared.services import Services
from shared.speech import MAX_INPUT_CHARS, MODELS, OPENAI_VOICES, SpeechCreate, render

bp = Blueprint("speech", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05

_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


def openai_error(status: int, code: str, message: str, param: str | None = None) -> Response:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    response = jsonify(error={"message": message, "type": kind, "param": param, "code": code})
    response.status_code = status
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    # OpenAI answers a body it cannot use with 400, where the rest of this API says 422.
    return openai_error(400 if exc.status == 422 else exc.status, exc.code, exc.message, exc.field)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    response = openai_error(status, "rate_limited" if status == 429 else "http_error", exc.description or "")
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> ResponseReturnValue:
    if isinstance(exc, STORE_UNREACHABLE):
        return openai_error(503, "store_unavailable", "The job store (Redis) is unreachable; nothing was changed.")
    log.exception("unhandled error")
    return openai_error(500, "internal_error", "The server met an unexpected error.")


def model_ids(found: Services) -> list[str]:
    return [*MODELS, found.settings.engine]


@bp.get("/models")
def list_models() -> ResponseReturnValue:
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "narrate"} for name in model_ids(services())]
    return jsonify(object="list", data=data)


@bp.get("/audio/voices")
def list_speech_voices() -> ResponseReturnValue:
    """Every voice `voice` takes: the engine's and the tenant's ready cloned voices (`voices`, as
    Kokoro-FastAPI lists them), and OpenAI's names with the voice each is spoken by (`aliases`)."""
    found = services()
    own = sorted(known_voices(found, g.tenant))
    aliases = {name: name if name in own else None for name in OPENAI_VOICES}
    data = [{"id": voice, "object": "voice"} for voice in own]
    return jsonify(object="list", voices=own, data=data, aliases=aliases)


def resolve_voice(voice: str, known: set[str]) -> str | None:
    """The job's voice for `voice`: an id of ours as is, an OpenAI name the engine's default voice (None)
    unless a voice of that id exists; anything else a 400 naming the voices to use."""
    if voice in known:
        return voice
    if voice in OPENAI_VOICES:
        return None
    raise ApiError(
        400, "voice_not_found", f"Unknown voice {voice!r}; see GET /v1/audio/voices (OpenAI's names are accepted "
        "too).", "voice",
    )  # fmt: skip


def speech_job(body: SpeechCreate, voice: str | None) -> JobCreate:
    payload = {
        "inputs": [{"text": body.input}],
        "voice": voice,
        "format": AudioFormat.FLAC.value,  # lossless: converted once, after the speed change
        "priority": JobPriority.INTERACTIVE.value,
        "sampling": {"seed": body.seed},
    }
    try:
        return JobCreate.model_validate(payload)
    except ValidationError as exc:  # the text itself (control characters, nothing to speak)
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ApiError(400, "invalid_input", f"input: {message}", "input") from exc


def parse_speech() -> SpeechCreate:
    payload = parse_json_body(request.get_data(cache=False), request.content_type)
    if isinstance(payload, dict) and isinstance(payload.get("input"), str) and len(payload["input"]) > MAX_INPUT_CHARS:
        raise ApiError(
            400, "input_too_long",
            f"input has {len(payload['input'])} characters; this endpoint takes at most {MAX_INPUT_CHARS}. "
            "Submit longer text as a job: POST /v1/jobs.", "input",
        )  # fmt: skip
    body = validate_body(SpeechCreate, payload)
    found = services()
    if body.model not in model_ids(found):
        raise ApiError(400, "model_not_found", f"Unknown model {body.model!r}; see GET /v1/models.", "model")
    return body


@bp.post("/audio/speech")
def create_speech() -> ResponseReturnValue:
    found = services()
    body = parse_speech()
    spec = speech_job(body, resolve_voice(body.voice, known_voices(found, g.tenant)))
    job_id, _ = submit(
        found.jobs, found.enqueue_job, g.tenant, spec, None,
        usage=found.usage, quota=found.settings.character_quota(g.tenant),
    )  # fmt: skip
    metrics.JOBS_SUBMITTED.inc()
    audio, rate = wait_for_audio(found, job_id, g.tenant)
    data = render(audio, rate, body.response_format, body.speed)
    response = Response(data, mimetype=body.response_format.content_type)
    response.headers["X-Narrate-Job"] = job_id
    return response


def wait_for_audio(found: Services, job_id: str, tenant: str) -> tuple[np.ndarray, int]:
    """The job's audio once it succeeded; its failure as a 500, a cancel (by the tenant) as a 409."""
    wait = found.settings.speech_wait_seconds
    deadline = time.monotonic() + wait
    while True:
        view = found.jobs.view(job_id, tenant=tenant)
        if view is None:
            raise ApiError(500, "job_lost", f"Job {job_id} expired before it finished.")
        if view.status == JobStatus.SUCCEEDED and view.stored_result.file is not None:
            data = found.storage.get_bytes(view.stored_result.file.key)
            audio, rate = sf.read(io.BytesIO(data), dtype="float32")
            return audio, rate
        if view.status == JobStatus.FAILED:
            error = view.error
            raise ApiError(500, error.code if error else "job_failed", error.message if error else "The job failed.")
        if view.status == JobStatus.CANCELED:
            raise ApiError(409, "job_canceled", f"Job {job_id} was canceled.")
        if time.monotonic() > deadline:
            found.jobs.cancel(job_id)
            raise ApiError(504, "timeout", f"Job {job_id} did not finish within {wait:g} s.")
        time.sleep(_POLL_SECONDS)
