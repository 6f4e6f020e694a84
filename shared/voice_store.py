"""Cloned voices: their records in Redis and the rules a reference clip meets (their files: `shared.storage_keys`).

A voice belongs to one tenant; every read takes the tenant and answers None for anyone else's voice,
so another tenant's id looks exactly like an id that never existed. Status changes go through Lua
scripts (like the job store), so a cloning task that finishes after the voice was deleted cannot bring
it back, and the per-tenant voice limit cannot be overrun by concurrent uploads.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import redis
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from shared.jobs import has_control_characters, to_datetime, utcnow
from shared.voice_mix import MAX_MIX_CHARS, MAX_MIX_PARTS

VOICE_ID_PREFIX = "voice_"
MIN_SPEECH_SECONDS = 3.0
"""Least speech a reference clip must hold after silence is trimmed."""
MAX_SPEECH_SECONDS = 30.0
"""Most speech per clip: the speaker embedder reads at most 30 s (longer clips must be cut first)."""
CLONING_ENGINES = frozenset({"kanitts2"})
"""Engines that can speak with a speaker embedding, for the API before a worker published its engine."""
FAILED_RETENTION_SECONDS = 7 * 24 * 3600
"""A failed voice record (its reason, no audio) is kept this long so the client can read why."""


class VoiceStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


def is_voice_id(value: str | None) -> bool:
    return bool(value) and value.startswith(VOICE_ID_PREFIX)


# --- models -----------------------------------------------------------------------------------------
class Consent(BaseModel):
    """Who consented to their voice being cloned, and when; stored with the voice as given."""

    by: str = Field(..., description="The person (or rights holder) who consented.")
    at: datetime = Field(..., description="When the consent was given (ISO 8601).")
    recorded_at: datetime = Field(..., description="When the service received the attestation.")


class ClipInfo(BaseModel):
    filename: str
    bytes: int
    duration_seconds: float = Field(..., description="Length of the decoded clip.")
    speech_seconds: float | None = Field(None, description="Length after trimming silence (once processed).")


class VoiceError(BaseModel):
    code: str
    message: str


class MixPart(BaseModel):
    voice: str = Field(..., description="A voice of the account (cloned, or itself a saved mix).")
    weight: float = Field(..., gt=0, le=1, description="Its share of the mix (the weights sum to 1).")
    version: int = Field(..., ge=1, description="The version of that voice's embedding the mix was made from.")


class VoiceView(BaseModel):
    """A cloned voice as clients see it; `id` is what a job names as its `voice`."""

    id: str
    name: str
    description: str | None = None
    language: str | None = None
    status: VoiceStatus
    created_at: datetime
    updated_at: datetime
    consent: Consent | None = Field(
        ..., description="The speaker's consent; null for a saved mix, whose parts carry their own."
    )
    clips: list[ClipInfo]
    mix: list[MixPart] | None = Field(
        None, description="For a voice saved as a mix: the voices (as they were then) and weights it blends."
    )
    version: int = Field(
        1, ge=1, description="Version of the voice's speaker embedding; it goes up whenever the embedding changes."
    )
    preview_url: str | None = Field(None, description="A short rendering in the voice, when available.")
    error: VoiceError | None = None


class BuiltinVoice(BaseModel):
    id: str
    description: str
    language: str


class VoiceList(BaseModel):
    """`GET /v1/voices`: the tenant's cloned voices and what the engine offers without cloning."""

    engine: str
    can_clone: bool
    data: list[VoiceView]
    builtin: list[BuiltinVoice] = Field(
        ...,
        description="Built-in voices and language/accent tags; a voice's `language` is the one it speaks "
        "(empty: every language of the engine).",
    )
    languages: list[str] = Field(
        ..., description="The languages the engine speaks (a job naming another is refused), its default first."
    )


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # a default of null beside type string would contradict itself


def _one_line_name(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("name is empty")
    if value is not None and has_control_characters(value, line_breaks_allowed=False):
        raise ValueError("name contains control characters or line breaks")
    return value.strip() if value is not None else None


def _text_description(value: str | None) -> str | None:
    if value is not None and has_control_characters(value, line_breaks_allowed=True):
        raise ValueError("description contains control characters")
    return value


class VoicePatch(BaseModel):
    """Body of `PATCH /v1/voices/{id}`."""

    model_config = ConfigDict(extra="forbid")
    # `null` is accepted here only to be refused with its own message (a voice keeps a name): the
    # document says string.
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] | SkipJsonSchema[None] = Field(
        None, description="Not blank; one line, no control characters.", json_schema_extra=_no_default
    )
    description: str | None = Field(
        None, max_length=1000, description="null removes it; no control characters but tab and line breaks."
    )

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str | None) -> str | None:
        return _one_line_name(value)

    @field_validator("description")
    @classmethod
    def _description_is_text(cls, value: str | None) -> str | None:
        return _text_description(value)


class VoiceMixCreate(BaseModel):
    """`POST /v1/voices` as JSON: a voice saved as a weighted mix of the account's voices."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100, description="One line, no control characters.")
    description: str | None = Field(None, max_length=1000)
    language: str | None = Field(
        None, max_length=32, description="Language/accent tag; default: that of the mix's heaviest voice."
    )
    mix: str = Field(
        ..., min_length=1, max_length=MAX_MIX_CHARS,
        description=f"2 to {MAX_MIX_PARTS} of your ready voices with weights, as in `ada(0.7)+ben(0.3)` (weights "
        "above 0, normalised; no weights: equal).",
    )  # fmt: skip

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        return _one_line_name(value) or value

    @field_validator("description")
    @classmethod
    def _description_is_text(cls, value: str | None) -> str | None:
        return _text_description(value)


@dataclass(frozen=True)
class VoiceRecord:
    """A stored voice with the fields only the service sees (tenant, storage keys)."""

    id: str
    tenant: str
    name: str
    description: str | None
    language: str | None
    status: VoiceStatus
    created_at: float
    updated_at: float
    consent: dict[str, Any]
    clips: list[dict[str, Any]]
    error: dict[str, str] | None
    preview: bool
    mix: list[dict[str, Any]] | None = None
    version: int = 1

    def view(self, preview_url: str | None = None) -> VoiceView:
        return VoiceView(
            id=self.id,
            name=self.name,
            description=self.description,
            language=self.language,
            status=self.status,
            created_at=to_datetime(self.created_at),
            updated_at=to_datetime(self.updated_at),
            consent=Consent(**self.consent) if self.consent else None,
            clips=[ClipInfo(**clip) for clip in self.clips],
            mix=[MixPart(**part) for part in self.mix] if self.mix is not None else None,
            version=self.version,
            preview_url=preview_url,
            error=VoiceError(**self.error) if self.error else None,
        )


# --- Redis ------------------------------------------------------------------------------------------
_CREATE = """
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ARGV[4] .. member) == 0 then redis.call('ZREM', KEYS[2], member) end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
"""

_FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

_UPDATE = """
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

_CLAIM = """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return -1 end
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""

_FIELDS = (
    "tenant", "name", "description", "language", "status", "created_at", "updated_at", "consent", "clips",
    "error", "preview", "mix", "version",
)  # fmt: skip


class VoiceLimitReached(Exception):
    """The tenant already keeps as many voices as allowed."""


class VoiceStore:
    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        # redis-py types every reply as "sync or async"; this client is synchronous, so replies are plain values.
        self._redis: Any = client
        self._prefix = prefix
        self._create = self._redis.register_script(_CREATE)
        self._finish = self._redis.register_script(_FINISH)
        self._update = self._redis.register_script(_UPDATE)
        self._claim = self._redis.register_script(_CLAIM)

    def _voice(self, voice_id: str) -> str:
        return f"{self._prefix}:voice:{voice_id}"

    def _index(self, tenant: str) -> str:
        return f"{self._prefix}:tenant:{tenant}:voices"

    @staticmethod
    def new_id() -> str:
        return VOICE_ID_PREFIX + secrets.token_hex(12)

    def create(
        self,
        voice_id: str,
        tenant: str,
        *,
        name: str,
        description: str | None,
        language: str | None,
        consent: dict[str, Any],
        clips: list[dict[str, Any]],
        limit: int,
        mix: list[dict[str, Any]] | None = None,
    ) -> VoiceRecord:
        """Store a voice in status `processing` (a saved `mix`, whose embedding the caller has already
        stored: `ready`); `VoiceLimitReached` when the tenant is at `limit`."""
        now = utcnow()
        fields = {
            "tenant": tenant,
            "name": name,
            "description": json.dumps(description),
            "language": json.dumps(language),
            "status": (VoiceStatus.PROCESSING if mix is None else VoiceStatus.READY).value,
            "created_at": repr(now),
            "updated_at": repr(now),
            "consent": json.dumps(consent),
            "clips": json.dumps(clips),
            "error": "null",
            "preview": "0",
            "mix": json.dumps(mix),
            "version": "1",
        }
        args: list[Any] = [limit, voice_id, repr(now), f"{self._prefix}:voice:"]
        for name_, value in fields.items():
            args += [name_, value]
        if not self._create(keys=[self._voice(voice_id), self._index(tenant)], args=args):
            raise VoiceLimitReached(tenant)
        record = self.get(voice_id, tenant=tenant)
        assert record is not None
        return record

    def get(self, voice_id: str, *, tenant: str | None) -> VoiceRecord | None:
        """The voice, or None when absent or (with `tenant`) another tenant's."""
        if not is_voice_id(voice_id):
            return None
        return self._record(voice_id, self._redis.hmget(self._voice(voice_id), _FIELDS), tenant)

    @staticmethod
    def _record(voice_id: str, values: list[bytes | None], tenant: str | None) -> VoiceRecord | None:
        raw = {
            name: (value.decode() if value is not None else None) for name, value in zip(_FIELDS, values, strict=True)
        }
        if raw["status"] is None or (tenant is not None and raw["tenant"] != tenant):
            return None
        return VoiceRecord(
            id=voice_id,
            tenant=raw["tenant"] or "",
            name=raw["name"] or "",
            description=json.loads(raw["description"] or "null"),
            language=json.loads(raw["language"] or "null"),
            status=VoiceStatus(raw["status"]),
            created_at=float(raw["created_at"] or 0),
            updated_at=float(raw["updated_at"] or 0),
            consent=json.loads(raw["consent"] or "{}"),
            clips=json.loads(raw["clips"] or "[]"),
            error=json.loads(raw["error"] or "null"),
            preview=raw["preview"] == "1",
            mix=json.loads(raw["mix"] or "null"),
            version=int(raw["version"] or 1),
        )

    def list(self, tenant: str) -> list[VoiceRecord]:
        """The tenant's voices, newest first (expired failed records drop out of the index here)."""
        ids = [member.decode() for member in self._redis.zrevrange(self._index(tenant), 0, -1)]
        pipe = self._redis.pipeline()
        for voice_id in ids:
            pipe.hmget(self._voice(voice_id), _FIELDS)
        records = []
        for voice_id, values in zip(ids, pipe.execute(), strict=True):
            record = self._record(voice_id, values, tenant)
            if record is None:
                self._redis.zrem(self._index(tenant), voice_id)
            else:
                records.append(record)
        return records

    def ready_ids(self, tenant: str) -> set[str]:
        return {record.id for record in self.list(tenant) if record.status == VoiceStatus.READY}

    def update(self, voice_id: str, tenant: str, **fields: str | None) -> VoiceRecord | None:
        """Change name/description of the tenant's voice; None when it is not theirs (or gone)."""
        args: list[Any] = [tenant, "updated_at", repr(utcnow())]
        for name, value in fields.items():
            args += [name, value if name == "name" else json.dumps(value)]
        if not self._update(keys=[self._voice(voice_id)], args=args):
            return None
        return self.get(voice_id, tenant=tenant)

    def claim(self, voice_id: str) -> int:
        """Count a delivery of the voice's cloning task; -1 when the voice is not `processing`."""
        return int(self._claim(keys=[self._voice(voice_id)]))

    def mark_ready(self, voice_id: str, *, clips: list[dict[str, Any]], preview: bool) -> bool:
        """processing -> ready; False when the voice is gone (deleted while it was being cloned)."""
        return self._finish_as(voice_id, VoiceStatus.READY, 0, clips=json.dumps(clips), preview="1" if preview else "0")

    def mark_failed(self, voice_id: str, code: str, message: str) -> bool:
        """processing -> failed with the reason; the record then expires after a week."""
        error = json.dumps({"code": code, "message": message})
        return self._finish_as(voice_id, VoiceStatus.FAILED, FAILED_RETENTION_SECONDS, error=error)

    def _finish_as(self, voice_id: str, status: VoiceStatus, expire: int, **fields: str) -> bool:
        args: list[Any] = [expire, "status", status.value, "updated_at", repr(utcnow())]
        for name, value in fields.items():
            args += [name, value]
        return bool(self._finish(keys=[self._voice(voice_id)], args=args))

    def delete(self, voice_id: str, tenant: str) -> bool:
        """Remove the tenant's voice record; False when there is none."""
        if self.get(voice_id, tenant=tenant) is None:
            return False
        pipe = self._redis.pipeline()
        pipe.delete(self._voice(voice_id))
        pipe.zrem(self._index(tenant), voice_id)
        pipe.execute()
        return True
