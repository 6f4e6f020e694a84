"""OpenAI-compatible speech: `POST /v1/audio/speech`, `GET /v1/audio/voices`, `GET /v1/models`.

The text runs as an interactive-priority job through the same queue, workers, quota and usage as
`POST /v1/jobs`; the view waits for it (a greenlet under the API's gevent worker, so waiting holds no
thread) and answers the whole file. Errors on these routes are in OpenAI's shape
(`{"error": {"message", "type", "param", "code"}}`), which OpenAI's client libraries read.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import soundfile as sf
from flask import Blueprint, Response, g, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from api.context import services
from api.errors import STORE_UNREACHABLE, ApiError, validate_body
from api.submission import check_voice, engine_summary, known_voices, parse_json_body, submit
from shared import metrics
from shared.audio.formats import AudioFormat
from shared.audio.presets import MasteringTargets
from shared.jobs import JobCreate, JobPriority, JobStatus
from shared.services import Services
from shared.speech import (
    MAX_INPUT_CHARS,
    MODELS,
    OPENAI_VOICES,
    STREAMED_FORMATS,
    SpeechCreate,
    StreamEncoder,
    StreamFormat,
    render,
)
from shared.speech_stream import SpeechChannel, SpeechPiece, StreamLevel
from shared.voice_mix import MixError, canonical_voice, is_mix
from shared.webhooks import emit_job_event

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
    response = openai_error(400 if exc.status == 422 else exc.status, exc.code, exc.message, exc.field)
    response.headers.update(exc.headers)
    return response


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


def resolve_voice(voice: str, known: set[str], can_clone: bool) -> str | None:
    """The job's voice for `voice`: an id of ours as is, a mix of cloned voices in its canonical spelling,
    an OpenAI name the engine's default voice (None) unless a voice of that id exists; anything else a
    400 naming the voices to use."""
    if voice in known:
        return voice
    if is_mix(voice):
        try:
            voice = canonical_voice(voice)
        except MixError as exc:
            raise ApiError(400, "invalid_voice_mix", f"voice: {exc}.", "voice") from exc
        check_voice(voice, known, can_clone, "voice")
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
    voice = resolve_voice(body.voice, known_voices(found, g.tenant), engine_summary(found).can_clone)
    spec = speech_job(body, voice)
    fmt = body.response_format
    streamed = body.stream_format == StreamFormat.SSE or fmt in STREAMED_FORMATS
    channel = SpeechChannel(found.redis, found.settings.key_prefix)
    job_id, _ = submit(
        found.jobs, found.enqueue_job, g.tenant, spec, None,
        usage=found.usage, quota=found.settings.character_quota(g.tenant),
        before_enqueue=channel.open if streamed else None,  # open before any speak unit can look for it
    )  # fmt: skip
    metrics.JOBS_SUBMITTED.inc()
    if streamed:
        chunks = stream_speech(found, channel, job_id, g.tenant, body, stream_targets(found, spec))
        first = next(chunks, b"")  # a job that fails before any audio is still a clean error
        if body.stream_format == StreamFormat.SSE:
            response = Response(
                stream_with_context(_sse_events(_with(first, chunks), body)), mimetype="text/event-stream"
            )
        else:
            response = Response(stream_with_context(_with(first, chunks)), mimetype=fmt.content_type)
    else:
        audio, rate = wait_for_audio(found, job_id, g.tenant)
        response = Response(render(audio, rate, fmt, body.speed), mimetype=fmt.content_type)
    response.headers["X-Narrate-Job"] = job_id
    return response


def _with(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _sse_events(chunks: Iterator[bytes], body: SpeechCreate) -> Iterator[bytes]:
    """OpenAI's speech events: `speech.audio.delta` with base64 audio, then `speech.audio.done` with usage
    (characters stand in for tokens)."""
    for chunk in chunks:
        if chunk:
            yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()})
    used = len(body.input)
    yield _sse({"type": "speech.audio.done", "usage": {"input_tokens": used, "output_tokens": 0, "total_tokens": used}})


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def stream_targets(found: Services, spec: JobCreate) -> MasteringTargets:
    """The level and peak the job's file is mastered to, which its stream is brought to as well."""
    settings = found.settings
    return spec.mastering_options().targets(default_lufs=settings.loudness_target_lufs,
                                            default_peak_dbfs=settings.peak_dbfs)  # fmt: skip


def stream_speech(
    found: Services, channel: SpeechChannel, job_id: str, tenant: str, body: SpeechCreate, targets: MasteringTargets
) -> Iterator[bytes]:
    """The job's audio encoded as it is generated, in reading order, at the job's level (`StreamLevel`:
    one gain for the whole response). The generator's end (the client went away, or the request ended)
    cancels a job still running and closes the channel."""
    encoder: StreamEncoder | None = None
    level: StreamLevel | None = None
    waiting: dict[int, SpeechPiece] = {}
    sent = 0
    pause_ms = 0
    after = "0"
    finished = False
    deadline = time.monotonic() + found.settings.speech_wait_seconds
    try:
        while True:
            after, pieces = channel.read(job_id, after, block_ms=200)
            for piece in pieces:
                waiting.setdefault(piece.index, piece)  # a redelivered chunk is sent once
            while sent in waiting:
                piece = waiting.pop(sent)
                if encoder is None or level is None:
                    encoder = StreamEncoder(body.response_format, piece.sample_rate, body.speed)
                    level = StreamLevel(piece.sample_rate, targets)
                silence = np.zeros(piece.sample_rate * pause_ms // 1000, np.float32)
                yield encoder.feed(np.concatenate([silence, level(piece.audio)]))
                pause_ms, sent = piece.pause_ms, sent + 1
            if pieces:
                continue
            view = found.jobs.view(job_id, tenant=tenant)
            if view is None or view.status in (JobStatus.FAILED, JobStatus.CANCELED):
                if encoder is None:
                    wait_for_audio(found, job_id, tenant)  # raises the job's error
                log.warning("job %s ended %s while its speech was streamed", job_id, view and view.status)
                finished = True
                return
            total = view.progress.chunks_total
            if total and sent >= total:
                break
            if view.status == JobStatus.SUCCEEDED:  # every piece was published before the job could succeed
                if sent == 0:  # the chunks were spoken before the channel opened: send the file
                    audio, rate = wait_for_audio(found, job_id, tenant)
                    encoder = StreamEncoder(body.response_format, rate, body.speed)
                    yield encoder.feed(audio)
                else:
                    log.warning("job %s: %d of %d pieces of its speech stream were lost", job_id, total - sent, total)
                break
            if time.monotonic() > deadline:
                raise ApiError(504, "timeout", f"Job {job_id} did not finish within the wait.")
        finished = True
        if encoder is not None:
            yield encoder.finish()
    finally:
        if not finished:
            outcome, _ = found.jobs.cancel(job_id)
            if outcome == "ok":
                emit_job_event(found, job_id)
        channel.close(job_id)


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
