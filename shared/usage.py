"""What each tenant used, per UTC day, and the monthly character quota.

Counted where the numbers arise: characters when the API accepts a job, audio and engine seconds when a
worker keeps a chunk. A chunk is counted once per job even when a resumed job records it again (a set
of counted chunk keys per job), so a redelivered job does not bill twice. The quota is a per-month
counter that the API checks and raises in one Lua script before a job is stored, so two concurrent
jobs cannot both slip under it; a job that is not stored after all gives its characters back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.services import Services

import redis
from pydantic import BaseModel, Field

from shared import metrics
from shared.jobs import Usage

MAX_RANGE_DAYS = 366

_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
if quota >= 0 and used + wanted > quota then return {0, used} end
local now = redis.call('INCRBY', KEYS[1], wanted)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, now}
"""

_ADD_CHUNK = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBYFLOAT', KEYS[2], 'audio_seconds', ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[2], 'engine_seconds', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""


class UsageDay(Usage):
    date: date
    jobs: int = Field(0, description="Jobs accepted that day.")


class QuotaView(BaseModel):
    month: str = Field(..., description="The UTC calendar month, YYYY-MM.")
    characters_used: int
    monthly_character_quota: int | None = Field(None, description="null: no quota.")


class UsageReport(BaseModel):
    """`GET /v1/usage`: one row per UTC day of the range (inclusive), totals and this month's quota."""

    from_: date = Field(..., alias="from", serialization_alias="from")
    to: date
    days: list[UsageDay]
    totals: Usage
    jobs: int
    quota: QuotaView


@dataclass(frozen=True)
class Reservation:
    """Characters counted against a month's quota; `release` gives them back."""

    tenant: str
    month: str
    characters: int
    accepted: bool
    used: int
    """Characters of the month after the reservation (or, refused, before it)."""


def _today() -> datetime:
    return datetime.now(UTC)


class UsageStore:
    def __init__(self, client: redis.Redis, *, prefix: str, retention_days: int, job_retention_seconds: int) -> None:
        self._redis: Any = client
        self._prefix = prefix
        self._day_ttl = retention_days * 86400
        self._job_ttl = job_retention_seconds
        self._reserve = self._redis.register_script(_RESERVE)
        self._add_chunk = self._redis.register_script(_ADD_CHUNK)

    def _day(self, tenant: str, day: date) -> str:
        return f"{self._prefix}:usage:{tenant}:{day.isoformat()}"

    def _month(self, tenant: str, month: str) -> str:
        return f"{self._prefix}:usage-month:{tenant}:{month}"

    def _chunks(self, job_id: str) -> str:
        return f"{self._prefix}:usage-chunks:{job_id}"

    # --- submission (API) -------------------------------------------------------------------------
    def reserve(self, tenant: str, characters: int, quota: int | None) -> Reservation:
        """Count `characters` against this month unless that would pass `quota` (None: no quota)."""
        month = _today().strftime("%Y-%m")
        accepted, used = self._reserve(
            keys=[self._month(tenant, month)], args=[characters, -1 if quota is None else quota, 40 * 86400]
        )
        return Reservation(tenant, month, characters, bool(accepted), int(used))

    def release(self, reservation: Reservation) -> None:
        if reservation.accepted:
            self._redis.decrby(self._month(reservation.tenant, reservation.month), reservation.characters)

    def record_submission(self, tenant: str, characters: int) -> None:
        """An accepted job: its characters and one job on today's row."""
        key = self._day(tenant, _today().date())
        pipe = self._redis.pipeline()
        pipe.hincrby(key, "characters", characters)
        pipe.hincrby(key, "jobs", 1)
        pipe.expire(key, self._day_ttl)
        pipe.execute()
        metrics.USAGE_CHARACTERS.labels(tenant=tenant).inc(characters)

    def month_used(self, tenant: str) -> tuple[str, int]:
        month = _today().strftime("%Y-%m")
        return month, int(self._redis.get(self._month(tenant, month)) or 0)

    # --- chunks (worker) --------------------------------------------------------------------------
    def record_chunk(
        self, tenant: str, job_id: str, chunk_key: str, *, audio_seconds: float, engine_seconds: float
    ) -> bool:
        """Count a kept chunk once per job; False when it was counted before (a resumed job)."""
        added = self._add_chunk(
            keys=[self._chunks(job_id), self._day(tenant, _today().date())],
            args=[chunk_key, repr(audio_seconds), repr(engine_seconds), self._job_ttl, self._day_ttl],
        )
        if added:
            metrics.USAGE_AUDIO_SECONDS.labels(tenant=tenant).inc(audio_seconds)
            metrics.USAGE_ENGINE_SECONDS.labels(tenant=tenant).inc(engine_seconds)
        return bool(added)

    def record_lines_reused(self, tenant: str, lines: int) -> None:
        """A finished batch copied `lines` lines from the line cache (the worker calls it once per job,
        after its fenced `finish_job`)."""
        if lines <= 0:
            return
        key = self._day(tenant, _today().date())
        pipe = self._redis.pipeline()
        pipe.hincrby(key, "lines_reused", lines)
        pipe.expire(key, self._day_ttl)
        pipe.execute()

    def forget_job(self, job_id: str) -> None:
        """Drop a deleted job's list of counted chunks; the tenant's day totals stay (they are the bill)."""
        self._redis.delete(self._chunks(job_id))

    # --- reading ----------------------------------------------------------------------------------
    def report(self, tenant: str, first: date, last: date, quota: int | None) -> UsageReport:
        days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
        pipe = self._redis.pipeline()
        for day in days:
            pipe.hgetall(self._day(tenant, day))
        rows: list[UsageDay] = []
        for day, raw in zip(days, pipe.execute(), strict=True):
            values = {k.decode(): v.decode() for k, v in raw.items()}
            rows.append(
                UsageDay(
                    date=day,
                    characters=int(values.get("characters", 0)),
                    audio_seconds=round(float(values.get("audio_seconds", 0)), 3),
                    engine_seconds=round(float(values.get("engine_seconds", 0)), 3),
                    jobs=int(values.get("jobs", 0)),
                    lines_reused=int(values.get("lines_reused", 0)),
                )
            )
        month, used = self.month_used(tenant)
        totals = Usage(
            characters=sum(row.characters for row in rows),
            audio_seconds=round(sum(row.audio_seconds for row in rows), 3),
            engine_seconds=round(sum(row.engine_seconds for row in rows), 3),
            lines_reused=sum(row.lines_reused for row in rows),
        )
        return UsageReport.model_validate(
            {
                "from": first,
                "to": last,
                "days": rows,
                "totals": totals,
                "jobs": sum(row.jobs for row in rows),
                "quota": QuotaView(month=month, characters_used=used, monthly_character_quota=quota),
            }
        )


def record_chunk_usage(
    services: Services, job_id: str, chunk_key: str, *, audio_seconds: float, engine_seconds: float
) -> None:
    """The worker's one call per kept chunk: count its seconds on its tenant's day (once per job)."""
    tenant = services.jobs.tenant_of(job_id)
    if tenant is not None:
        services.usage.record_chunk(
            tenant, job_id, chunk_key, audio_seconds=audio_seconds, engine_seconds=engine_seconds
        )
