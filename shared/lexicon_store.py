"""Pronunciation lexicons of a tenant, in Redis (`/v1/lexicons`); the entries themselves and how they
apply to text are `shared.text.lexicon`.

A lexicon belongs to one tenant; every read takes the tenant and answers None for anyone else's, so
another tenant's id looks exactly like one that never existed. A job names lexicons by id; their
entries are copied into the job when it is submitted (`snapshot`), so editing or deleting a lexicon
later never changes a job already queued.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import redis
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.jobs import has_control_characters, to_datetime, utcnow
from shared.text.lexicon import MAX_LEXICON_ENTRIES, LexiconEntry, check_unique

LEXICON_ID_PREFIX = "lex_"

LexiconName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("name", check_fields=False)
    @classmethod
    def _name_is_one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or has_control_characters(value, line_breaks_allowed=False)):
            raise ValueError("name must be one line of text (no control characters or line breaks)")
        return value

    @field_validator("entries", check_fields=False)
    @classmethod
    def _unique_entries(cls, value: list[LexiconEntry] | None) -> list[LexiconEntry] | None:
        if value is not None:
            check_unique(value)
        return value


class LexiconCreate(_Body):
    """Body of `POST /v1/lexicons` and `PUT /v1/lexicons/{id}` (which replaces the whole lexicon)."""

    name: LexiconName
    description: str | None = Field(None, max_length=1000)
    entries: list[LexiconEntry] = Field(..., max_length=MAX_LEXICON_ENTRIES)


class LexiconPatch(_Body):
    """Body of `PATCH /v1/lexicons/{id}`: the fields given replace the lexicon's own (`entries` as a whole)."""

    name: LexiconName | None = None
    description: str | None = Field(None, max_length=1000)
    entries: list[LexiconEntry] | None = Field(None, max_length=MAX_LEXICON_ENTRIES)


class LexiconView(BaseModel):
    id: str = Field(..., description="What a job names in `lexicons`.")
    name: str
    description: str | None = None
    entries: list[LexiconEntry]
    created_at: datetime
    updated_at: datetime


class LexiconSummary(BaseModel):
    id: str
    name: str
    description: str | None = None
    entry_count: int
    created_at: datetime
    updated_at: datetime


class LexiconList(BaseModel):
    data: list[LexiconSummary]


class LexiconLimitReached(Exception):
    pass


class LexiconStore:
    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._redis: Any = client  # synchronous client: replies are plain values
        self._prefix = prefix

    def _key(self, lexicon_id: str) -> str:
        return f"{self._prefix}:lexicon:{lexicon_id}"

    def _index(self, tenant: str) -> str:
        return f"{self._prefix}:tenant:{tenant}:lexicons"

    def create(self, tenant: str, spec: LexiconCreate, *, limit: int) -> LexiconView:
        if self._redis.scard(self._index(tenant)) >= limit:
            raise LexiconLimitReached(limit)
        now = to_datetime(utcnow())
        view = LexiconView(
            id=LEXICON_ID_PREFIX + secrets.token_urlsafe(12),
            name=spec.name,
            description=spec.description,
            entries=spec.entries,
            created_at=now,
            updated_at=now,
        )
        pipe = self._redis.pipeline()
        pipe.hset(self._key(view.id), mapping={"tenant": tenant, "view": view.model_dump_json()})
        pipe.sadd(self._index(tenant), view.id)
        pipe.execute()
        return view

    def get(self, lexicon_id: str, *, tenant: str) -> LexiconView | None:
        tenant_of, raw = self._redis.hmget(self._key(lexicon_id), ["tenant", "view"])
        if raw is None or tenant_of is None or tenant_of.decode() != tenant:
            return None
        return LexiconView.model_validate_json(raw)

    def list(self, tenant: str) -> list[LexiconSummary]:
        ids = sorted(member.decode() for member in self._redis.smembers(self._index(tenant)))
        views = [view for view in (self.get(lexicon_id, tenant=tenant) for lexicon_id in ids) if view]
        return [
            LexiconSummary(
                id=view.id,
                name=view.name,
                description=view.description,
                entry_count=len(view.entries),
                created_at=view.created_at,
                updated_at=view.updated_at,
            )
            for view in sorted(views, key=lambda view: view.created_at)
        ]

    def update(self, lexicon_id: str, *, tenant: str, changes: dict[str, Any]) -> LexiconView | None:
        """The lexicon with `changes` (field -> new value) applied; None when it is not the tenant's."""
        current = self.get(lexicon_id, tenant=tenant)
        if current is None:
            return None
        updated = current.model_copy(update={**changes, "updated_at": to_datetime(utcnow())})
        # Written only while the record still exists: a delete in between is not undone.
        if self._redis.hset(self._key(lexicon_id), "view", updated.model_dump_json()) != 0:
            self._redis.delete(self._key(lexicon_id))
            return None
        return updated

    def delete(self, lexicon_id: str, *, tenant: str) -> bool:
        if self.get(lexicon_id, tenant=tenant) is None:
            return False
        pipe = self._redis.pipeline()
        pipe.delete(self._key(lexicon_id))
        pipe.srem(self._index(tenant), lexicon_id)
        pipe.execute()
        return True

    def snapshot(self, tenant: str, lexicon_ids: Sequence[str]) -> tuple[list[LexiconEntry], str | None]:
        """The entries of the listed lexicons in order, or the first id that is not the tenant's."""
        entries: list[LexiconEntry] = []
        for lexicon_id in lexicon_ids:
            view = self.get(lexicon_id, tenant=tenant)
            if view is None:
                return [], lexicon_id
            entries.extend(view.entries)
        return entries, None
