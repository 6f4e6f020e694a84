"""`/v1/voices`: clone a voice from reference clips, list, read, rename and delete voices.

Uploads are decoded here, by content, before anything is stored: a file that is not audio (or is cut
short) is refused at once and never written anywhere. Everything else (trimming, speech-length checks,
the embedding) happens in the cloning task on a worker. Reference audio is personal data: it goes only
to the tenant's storage prefix, is never logged, and is deleted with the voice.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from werkzeug.datastructures import FileStorage

from api.context import link_base_url, services
from api.errors import ApiError, validate_body
from api.submission import engine_speaks, engine_summary, parse_json_body
from shared.audio.decode import AudioDecodeError, decode_audio
from shared.downloads import mint_voice_view
from shared.jobs import has_control_characters
from shared.services import Services
from shared.speaker_embedding import embedding_from_bytes, embedding_to_bytes
from shared.storage import StorageKeyMissing
from shared.storage_keys import embedding_key, reference_key, voice_prefix
from shared.voice_mix import MixError, mix_embeddings, parse_mix
from shared.voice_store import (
    MIN_SPEECH_SECONDS,
    BuiltinVoice,
    VoiceLimitReached,
    VoiceList,
    VoiceMixCreate,
    VoicePatch,
    VoiceRecord,
    VoiceStatus,
)
from shared.webhooks import emit_voice_event

log = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries and the text fields on top of the clips' own bytes."""
LANGUAGE_PATTERN = r"^[a-z]{2,3}(?:_[a-z0-9]{2,8}){0,3}$"
"""A language/accent tag such as en or en_us (after lower-casing and `-` to `_`)."""
_LANGUAGE = re.compile(LANGUAGE_PATTERN.removesuffix("$") + r"\Z")
MAX_CONSENT_AT_CHARS = 64
_MAX_CONSENT_SKEW = timedelta(days=1)


def _view_json(record: VoiceRecord) -> dict[str, Any]:
    return mint_voice_view(services(), record, base_url=link_base_url()).model_dump(mode="json")


def _own_voice(voice_id: str) -> VoiceRecord:
    record = services().voices.get(voice_id, tenant=g.tenant)
    if record is None:
        raise ApiError(404, "not_found", f"No voice {voice_id!r}.")
    return record


def create_voice() -> ResponseReturnValue:
    found = services()
    settings = found.settings
    engine = engine_summary(found)
    if not engine.can_clone:
        raise ApiError(
            409, "cloning_unsupported",
            f"Voice cloning needs the kanitts2 engine; the workers run {engine.name!r}, which cannot clone. "
            "Run the workers with NARRATE_ENGINE=kanitts2.",
        )  # fmt: skip
    limit = settings.voice_upload_max_bytes
    too_large = ApiError(
        413,
        "payload_too_large",
        f"The reference clips may total at most {limit} bytes ({limit / 2**20:.0f} MiB).",
    )
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD_BYTES:
        raise too_large
    request.max_content_length = limit + FORM_OVERHEAD_BYTES
    if request.mimetype == "application/json":
        return create_mix_voice(found)
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type",
            "Send the clips as multipart/form-data (field `files`), or a voice mix as JSON (field `mix`).",
        )  # fmt: skip
    form = request.form
    files = [
        f for f in request.files.getlist("files") + request.files.getlist("file") if f.filename or f.content_length
    ]
    name = _required_text_field(form, "name", max_length=100, one_line=True)
    description = _text_field(form, "description", max_length=1000)
    language = _language(form.get("language"))
    consent = _consent(form)
    if not files:
        raise ApiError(422, "invalid_request", "Upload at least one reference clip in the field `files`.", "files")
    if len(files) > settings.voice_max_clips:
        raise ApiError(422, "too_many_clips", f"At most {settings.voice_max_clips} reference clips per voice.", "files")
    payloads = [upload.read() for upload in files]
    if sum(len(data) for data in payloads) > limit:
        raise too_large
    clips = [_check_clip(index, upload, data) for index, (upload, data) in enumerate(zip(files, payloads, strict=True))]

    voices, storage = found.voices, found.storage
    voice_id = voices.new_id()
    try:
        record = voices.create(
            voice_id, g.tenant, name=name, description=description, language=language, consent=consent,
            clips=clips, limit=settings.voices_per_tenant,
        )  # fmt: skip
    except VoiceLimitReached as exc:
        raise ApiError(
            409, "voice_limit_reached",
            f"This account already has {settings.voices_per_tenant} voices; delete one first.",
        ) from exc  # fmt: skip
    try:
        for index, data in enumerate(payloads):
            storage.put_bytes(reference_key(g.tenant, voice_id, index), data)
        found.enqueue_clone(voice_id)
    except Exception as exc:
        voices.delete(voice_id, g.tenant)
        storage.delete_prefix(voice_prefix(g.tenant, voice_id))
        log.exception("voice %s could not be queued", voice_id)
        raise ApiError(
            503, "queue_unavailable", "Storage or the job queue is unreachable; nothing was stored."
        ) from exc
    log.info("voice %s queued for cloning (%d clips)", voice_id, len(clips))
    response = jsonify(_view_json(record))
    response.status_code = 202
    response.headers["Location"] = f"/v1/voices/{voice_id}"
    return response


def create_mix_voice(found: Services) -> ResponseReturnValue:
    """A voice saved as a weighted mix of the tenant's ready voices: its embedding is blended here (plain
    arithmetic on stored vectors, no model) and stored first, then the record, `ready` at once."""
    body = validate_body(VoiceMixCreate, parse_json_body(request.get_data(cache=False), request.content_type))
    try:
        mix = parse_mix(body.mix)
    except MixError as exc:
        raise ApiError(422, "invalid_voice_mix", f"mix: {exc}.", "mix") from exc
    if len(mix.parts) < 2:
        raise ApiError(422, "invalid_voice_mix", "mix: a mix blends at least 2 voices.", "mix")
    voices, storage = found.voices, found.storage
    records = {voice: voices.get(voice, tenant=g.tenant) for voice in mix.voices}
    vectors = []
    for voice, record in records.items():
        if record is None or record.status != VoiceStatus.READY:
            raise ApiError(
                422, "unknown_voice", f"mix: {voice!r} is not one of your ready voices; see GET /v1/voices.", "mix"
            )
        try:
            vectors.append(embedding_from_bytes(storage.get_bytes(embedding_key(g.tenant, voice))))
        except StorageKeyMissing as exc:
            raise ApiError(422, "unknown_voice", f"mix: the voice {voice!r} was just deleted.", "mix") from exc
    try:
        vector = mix_embeddings(vectors, [weight for _, weight in mix.parts])
    except MixError as exc:  # opposite embeddings at equal weights
        raise ApiError(422, "invalid_voice_mix", f"mix: {exc}.", "mix") from exc
    parts = [
        {"voice": voice, "weight": round(weight, 6), "version": records[voice].version}  # pyright: ignore[reportOptionalMemberAccess]
        for voice, weight in mix.parts
    ]
    language = _language(body.language) or records[mix.main_voice].language  # pyright: ignore[reportOptionalMemberAccess]
    voice_id = voices.new_id()
    storage.put_bytes(embedding_key(g.tenant, voice_id), embedding_to_bytes(vector))
    try:
        record = voices.create(
            voice_id, g.tenant, name=body.name, description=body.description, language=language, consent={},
            clips=[], limit=found.settings.voices_per_tenant, mix=parts,
        )  # fmt: skip
    except VoiceLimitReached as exc:
        storage.delete_prefix(voice_prefix(g.tenant, voice_id))
        raise ApiError(
            409, "voice_limit_reached",
            f"This account already has {found.settings.voices_per_tenant} voices; delete one first.",
        ) from exc  # fmt: skip
    except Exception:
        storage.delete_prefix(voice_prefix(g.tenant, voice_id))
        raise
    emit_voice_event(found, voice_id)
    log.info("voice %s saved as a mix of %d voices", voice_id, len(parts))
    response = jsonify(_view_json(record))
    response.status_code = 201
    response.headers["Location"] = f"/v1/voices/{voice_id}"
    return response


def _required_text_field(form: Any, field: str, *, max_length: int, one_line: bool = False) -> str:
    value = _text_field(form, field, required=True, max_length=max_length, one_line=one_line)
    assert value is not None  # required: _text_field raised otherwise
    return value


def _text_field(
    form: Any, field: str, *, required: bool = False, max_length: int, one_line: bool = False
) -> str | None:
    value = (form.get(field) or "").strip()
    if not value:
        if required:
            raise ApiError(422, "invalid_request", f"{field}: field required", field)
        return None
    if len(value) > max_length:
        raise ApiError(422, "invalid_request", f"{field}: at most {max_length} characters", field)
    if has_control_characters(value, line_breaks_allowed=not one_line):
        what = "control characters or line breaks" if one_line else "control characters"
        raise ApiError(422, "invalid_request", f"{field}: contains {what}", field)
    return value


def _language(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    tag = value.strip().lower().replace("-", "_")
    if not _LANGUAGE.match(tag):
        raise ApiError(422, "invalid_request", "language: a language tag such as en or en_us", "language")
    return tag


def _consent(form: Any) -> dict[str, str]:
    """The uploader's attestation that the speaker consented; required, stored with the voice."""
    by = _text_field(form, "consent_by", max_length=200, one_line=True)
    if by is None:
        raise ApiError(
            422, "consent_required",
            "Cloning a voice needs the speaker's consent: send consent_by (who consented) and "
            "optionally consent_at (when, ISO 8601; default now).", "consent_by",
        )  # fmt: skip
    now = datetime.now(UTC)
    raw_at = (form.get("consent_at") or "").strip()
    if len(raw_at) > MAX_CONSENT_AT_CHARS:
        raise ApiError(422, "invalid_request", "consent_at: an ISO 8601 date or date-time", "consent_at")
    try:
        at = datetime.fromisoformat(raw_at) if raw_at else now
    except ValueError as exc:
        raise ApiError(422, "invalid_request", "consent_at: an ISO 8601 date or date-time", "consent_at") from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if at > now + _MAX_CONSENT_SKEW:
        raise ApiError(422, "invalid_request", "consent_at lies in the future", "consent_at")
    return {"by": by, "at": at.isoformat(), "recorded_at": now.isoformat()}


def _check_clip(index: int, upload: FileStorage, data: bytes) -> dict[str, Any]:
    """Decode by content (the file name and declared type are ignored) and refuse clips that cannot
    hold enough speech; the message names the clip, never its content."""
    filename = (upload.filename or f"clip-{index}")[:200]
    field = f"files.{index}"
    try:
        audio, sr = decode_audio(data)
    except AudioDecodeError as exc:
        raise ApiError(422, "invalid_audio", f"{filename}: not readable audio ({exc}).", field) from exc
    seconds = len(audio) / sr
    if seconds < MIN_SPEECH_SECONDS:
        need = f"each clip needs at least {MIN_SPEECH_SECONDS:.0f} s of speech"
        raise ApiError(422, "clip_too_short", f"{filename}: {seconds:.1f} s long; {need}.", field)
    return {"filename": filename, "bytes": len(data), "duration_seconds": round(seconds, 3)}


def list_voices() -> ResponseReturnValue:
    engine = engine_summary(services())
    body = VoiceList(
        engine=engine.name,
        can_clone=engine.can_clone,
        data=[],
        builtin=[BuiltinVoice(**voice) for voice in engine.voices],
        languages=engine_speaks(services()).spoken,
    ).model_dump(mode="json")
    body["data"] = [_view_json(record) for record in services().voices.list(g.tenant)]
    return jsonify(body)


def get_voice(voice_id: str) -> ResponseReturnValue:
    return jsonify(_view_json(_own_voice(voice_id)))


def patch_voice(voice_id: str) -> ResponseReturnValue:
    _own_voice(voice_id)
    payload = parse_json_body(request.get_data(cache=False), request.content_type)
    patch = validate_body(VoicePatch, payload)
    if "name" in patch.model_fields_set and patch.name is None:
        raise ApiError(422, "invalid_request", "name: may not be null", "name")
    fields = {name: getattr(patch, name) for name in patch.model_fields_set}
    record = services().voices.update(voice_id, g.tenant, **fields)
    if record is None:
        raise ApiError(404, "not_found", f"No voice {voice_id!r}.")
    return jsonify(_view_json(record))


def delete_voice(voice_id: str) -> ResponseReturnValue:
    """Removes the record first (jobs starting from now on fail with `voice_deleted`), then every file."""
    record = _own_voice(voice_id)
    found = services()
    found.voices.delete(voice_id, g.tenant)
    found.storage.delete_prefix(voice_prefix(record.tenant, voice_id))
    log.info("voice %s deleted", voice_id)
    return Response(status=204)


def register(app: Flask, *, limiter: Limiter, rate_limit: str) -> None:
    """Attach `/v1/voices` to the app; cloning requests are rate-limited per key (`rate_limit`)."""
    bp = Blueprint("voices", __name__, url_prefix="/v1/voices")
    bp.add_url_rule("", view_func=limiter.limit(rate_limit)(create_voice), methods=["POST"])
    bp.add_url_rule("", view_func=list_voices, methods=["GET"])
    bp.add_url_rule("/<voice_id>", view_func=get_voice, methods=["GET"])
    bp.add_url_rule("/<voice_id>", view_func=patch_voice, methods=["PATCH"])
    bp.add_url_rule("/<voice_id>", view_func=delete_voice, methods=["DELETE"])
    app.register_blueprint(bp)
