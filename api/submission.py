"""Turning a raw request into a queued job, or into an error that leaves nothing behind."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api import json_body
from api.errors import ApiError, validate_body
from shared.input_languages import LanguageRefused, check_languages
from shared.jobs import JobCreate
from shared.lexicon_store import LexiconStore
from shared.services import Enqueue, Services
from shared.settings import Settings
from shared.store import IdempotencyConflict, JobStore
from shared.text.chunking import PAUSE_MARKER
from shared.text.normalize import is_speakable
from shared.text.ssml import SsmlError, TextFormat, parse_ssml
from shared.url_guard import AllowList, UrlRefused, check_url
from shared.usage import UsageStore
from shared.voice_mix import is_mix, parse_mix
from shared.voice_store import CLONING_ENGINES, is_voice_id
from shared.voices import BUILTIN_VOICES, builtin_voice_ids, engine_languages, voice_languages


@dataclass(frozen=True)
class EngineLanguages:
    """What the configured engine speaks: its languages (base codes) and the one language of each voice
    bound to one (`shared.voices`)."""

    spoken: list[str]
    voices: dict[str, str] = field(default_factory=dict)


def parse_json_body(raw: bytes, content_type: str | None) -> Any:
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the job as JSON with Content-Type: application/json.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_encoding", f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    return json_body.loads(text)


@dataclass(frozen=True)
class EngineSummary:
    name: str
    can_clone: bool
    voices: list[dict[str, str]]


def engine_summary(found: Services) -> EngineSummary:
    """What the workers run: their published engine when it matches the configuration, else the
    configured engine's catalogue (before any worker has started)."""
    settings = found.settings
    info = found.jobs.engine_info()
    if info and info.get("name") == settings.engine:
        return EngineSummary(info["name"], bool(info.get("can_clone")), list(info.get("voices", [])))
    return EngineSummary(settings.engine, settings.engine in CLONING_ENGINES, BUILTIN_VOICES.get(settings.engine, []))


def check_voice(voice: str, known: set[str], can_clone: bool, field: str) -> None:
    """422 unless `voice` is one the tenant may use: a known voice, or a mix of known cloned voices on an
    engine that clones (mixing blends speaker embeddings; a built-in voice has none)."""
    if not is_mix(voice):
        if voice not in known:
            raise ApiError(422, "unknown_voice", f"Unknown voice {voice!r}; see GET /v1/voices.", field)
        return
    if not can_clone:
        raise ApiError(
            422, "mix_unsupported",
            f"{voice!r} is a voice mix: mixes blend cloned voices' speaker embeddings, and the workers' engine "
            "cannot clone (run them with NARRATE_ENGINE=kanitts2).", field,
        )  # fmt: skip
    for part in parse_mix(voice).voices:
        if part not in known:
            raise ApiError(422, "unknown_voice", f"Unknown voice {part!r} in the mix {voice!r}.", field)
        if not is_voice_id(part):
            raise ApiError(
                422, "mix_unsupported",
                f"{part!r} in the mix {voice!r} is a built-in voice, which has no speaker embedding to mix; "
                "mix cloned voices (voice_...).", field,
            )  # fmt: skip


def validate_job(
    payload: Any,
    settings: Settings,
    known_voices: set[str],
    languages: EngineLanguages | None = None,
    *,
    can_clone: bool,
) -> JobCreate:
    """The job, or the 4xx of its first fault; with `languages`, a named language the engine cannot speak
    (or the input's voice does not) is 422 `unsupported_language` (`voice_language_mismatch`)."""
    if isinstance(payload, dict) and "lexicon_snapshot" in payload:
        raise ApiError(422, "invalid_request", "lexicon_snapshot: unknown field", "lexicon_snapshot")
    spec = validate_body(JobCreate, payload)
    if len(spec.inputs) > settings.max_inputs:
        raise ApiError(413, "too_many_inputs", f"At most {settings.max_inputs} inputs per job.", "inputs")
    if spec.total_chars() > settings.max_text_chars:
        raise ApiError(
            413, "text_too_long",
            f"The job has {spec.total_chars()} characters; the maximum is {settings.max_text_chars}.", "inputs",
        )  # fmt: skip
    for index, item in enumerate(spec.inputs):
        if item.voice is not None:
            check_voice(item.voice, known_voices, can_clone, f"inputs.{index}.voice")
    if spec.voice is not None:
        check_voice(spec.voice, known_voices, can_clone, "voice")
    for speaker, voice in spec.voices.items():
        check_voice(voice, known_voices, can_clone, f"voices.{speaker}")
    for index, speaker in spec.unknown_speakers()[:1]:
        raise ApiError(
            400, "unknown_speaker",
            f"Input {index} names the speaker {speaker!r}, who has no voice in `voices`.", f"inputs.{index}",
        )  # fmt: skip
    if languages is not None:
        try:
            check_languages(spec, languages.spoken, languages.voices)
        except LanguageRefused as exc:
            raise ApiError(422, exc.code, str(exc), exc.field) from exc
    if spec.webhook_url is not None:
        check_webhook_url(spec.webhook_url, settings, "webhook_url")
    for index, item in enumerate(spec.inputs):
        if item.text_format is TextFormat.SSML and item.text is not None:
            check_ssml(item.text, f"inputs.{index}.text")
    return spec


def check_ssml(text: str, field: str) -> None:
    """400 `invalid_ssml` naming the line and column of the first problem, or of a document that says nothing."""
    try:
        document = parse_ssml(text)
    except SsmlError as exc:
        raise ApiError(400, "invalid_ssml", f"{field}: {exc}.", field) from exc
    if not is_speakable(PAUSE_MARKER.sub(" ", document.text)):
        raise ApiError(400, "invalid_ssml", f"{field}: the SSML has nothing to speak (no letters or digits).", field)


def take_lexicon_snapshot(lexicons: LexiconStore, tenant: str, spec: JobCreate) -> JobCreate:
    """The job with the entries of its `lexicons` copied in (404 for an id that is not the tenant's)."""
    if not spec.lexicons:
        return spec
    entries, missing = lexicons.snapshot(tenant, spec.lexicons)
    if missing is not None:
        index = spec.lexicons.index(missing)
        raise ApiError(404, "lexicon_not_found", f"No lexicon {missing!r}.", f"lexicons.{index}")
    return spec.model_copy(update={"lexicon_snapshot": entries})


def engine_speaks(services: Services) -> EngineLanguages:
    """The languages of the workers' published engine, else of the configured engine's catalogue."""
    published = services.jobs.engine_info()
    engine = services.settings.engine
    return EngineLanguages(
        engine_languages(engine, published, model=services.settings.kanitts2_model),
        voice_languages(engine, published),
    )


def check_webhook_url(url: str, settings: Settings, field: str) -> None:
    """The SSRF guard at submission: 400 `webhook_url_refused` for a host that is not public."""
    try:
        check_url(url, AllowList.parse(settings.webhook_allow_hosts))
    except UrlRefused as exc:
        raise ApiError(400, "webhook_url_refused", f"{field}: {exc}.", field) from exc


def body_hash(spec: JobCreate) -> str:
    """Of the request as sent: the lexicon snapshot taken at submission is not part of it."""
    return hashlib.sha256(spec.model_dump_json(exclude={"lexicon_snapshot"}).encode()).hexdigest()


def known_voices(services: Services, tenant: str) -> set[str]:
    """Built-in voices and language tags of the engine, and the tenant's own ready cloned voices."""
    published = services.jobs.engine_info()
    return builtin_voice_ids(services.settings.engine, published) | services.voices.ready_ids(tenant)


def submit(
    store: JobStore,
    enqueue: Enqueue,
    tenant: str,
    spec: JobCreate,
    idempotency_key: str | None,
    *,
    usage: UsageStore,
    quota: int | None,
    before_enqueue: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """Reserve the characters against the tenant's monthly quota, store and enqueue; if any step fails,
    what was done is undone (record removed, characters given back), so nothing is half-done. An
    idempotent replay returns the earlier job without counting anything. `before_enqueue(job_id)` runs
    once the job is stored, before its work token is sent (a speech stream opens its channel there)."""
    digest = body_hash(spec)
    try:
        if idempotency_key and (earlier := store.find_idempotent(tenant, idempotency_key, digest)):
            return earlier, False
    except IdempotencyConflict as exc:
        raise _conflict() from exc
    chars = spec.total_chars()
    reservation = usage.reserve(tenant, chars, quota)
    if not reservation.accepted:
        raise ApiError(
            429, "quota_exceeded",
            f"This job has {chars} characters; {reservation.used} of the monthly quota of {quota} characters "
            f"are used in {reservation.month} (UTC), so {max(0, (quota or 0) - reservation.used)} remain.",
            "inputs",
        )  # fmt: skip
    try:
        job_id, created = store.create(tenant, spec, body_hash=digest, idempotency_key=idempotency_key)
    except IdempotencyConflict as exc:
        usage.release(reservation)
        raise _conflict() from exc
    except Exception:
        usage.release(reservation)
        raise
    if not created:  # an identical request won the race meanwhile
        usage.release(reservation)
        return job_id, False
    try:
        if before_enqueue is not None:
            before_enqueue(job_id)
        enqueue(job_id)
    except Exception as exc:
        store.delete(job_id, idempotency=(tenant, idempotency_key) if idempotency_key else None)
        usage.release(reservation)
        raise ApiError(503, "queue_unavailable", "The job queue is unreachable; nothing was stored.") from exc
    usage.record_submission(tenant, chars)
    return job_id, True


def _conflict() -> ApiError:
    return ApiError(409, "idempotency_conflict", "This Idempotency-Key was used with a different request body.")
