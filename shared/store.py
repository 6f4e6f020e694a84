"""Job records in Redis: our own state, not Celery's result backend.

Celery results expire and unknown ids look PENDING, so the API could not tell a lost job from a queued
one. Every status change goes through a Lua script that checks the current status first, so a late or
duplicate worker can never flip a canceled or finished job back, and progress writes to a job that is
no longer running are refused (which is how a running job learns it was canceled).
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from shared.jobs import (
    InputView,
    JobCreate,
    JobError,
    JobPage,
    JobPriority,
    JobStatus,
    JobView,
    LineCounts,
    LineStatus,
    Progress,
    StoredResult,
    StoredVersion,
    Usage,
    to_datetime,
    utcnow,
)

if TYPE_CHECKING:
    from shared.units import UnitStore

# --- status index: a zset per tenant and status (score: creation time), so a filtered list reads only
# the jobs it returns. Every script below that changes a status is registered with this helper prepended
# and calls it (lines marked `-- status index`), so the index can never disagree with the records. Key
# names are derived from the job key (its prefix) and the record's tenant: one Redis, not a cluster (as
# the Celery broker).
_STATUS_INDEX_LUA = """
local function move_status_index(job_key, job_id, old, new)
  local tenant = redis.call('HGET', job_key, 'tenant')
  local created = redis.call('HGET', job_key, 'created_at')
  if not tenant or not created or old == new then return end
  local all = string.sub(job_key, 1, #job_key - #job_id - 5) .. ':tenant:' .. tenant .. ':jobs'
  redis.call('ZREM', all .. ':' .. old, job_id)
  redis.call('ZADD', all .. ':' .. new, created, job_id)
  local ttl = redis.call('PTTL', all)
  if ttl > 0 then redis.call('PEXPIRE', all .. ':' .. new, ttl) end
end
"""

# Indexes the statuses of jobs stored before the status index existed (atomically per batch, so a
# concurrent transition cannot leave a stale entry). KEYS[1]: the tenant's index of all jobs.
_BACKFILL_STATUS_INDEX = """
local batch = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local ttl = redis.call('PTTL', KEYS[1])
for i = 1, #batch, 2 do
  local status = redis.call('HGET', ARGV[1] .. batch[i], 'status')
  if status then
    redis.call('ZADD', KEYS[1] .. ':' .. status, batch[i + 1], batch[i])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[1] .. ':' .. status, ttl) end
  end
end
if #batch == 0 then return '' end
return batch[#batch]  -- the last job's score: where the next batch starts
"""

_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == status then allowed = true end
end
if not allowed then return {'refused', status} end
redis.call('HSET', KEYS[1], 'status', ARGV[3])
move_status_index(KEYS[1], ARGV[1], status, ARGV[3])  -- status index
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] ~= 'queued' then redis.call('ZREM', KEYS[2], ARGV[1]) end
return {'ok', status}
"""

# The record's per-input summaries, replaced only while the record exists (a deleted job stays deleted).
_SET_INPUTS = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], 'inputs', ARGV[1])
return 1
"""

_SUMMARY_FIELDS = (
    "tenant", "status", "created_at", "started_at", "finished_at", "chunks_done", "chunks_total",
    "audio_seconds", "synth_seconds", "attempts", "result", "inputs", "error", "summary", "timings", "priority",
    "versions", "revision_of",
)  # fmt: skip


CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""A list cursor as `next_cursor` gives it: base64url of a creation time, unpadded."""
_CURSOR = re.compile(CURSOR_PATTERN.removesuffix("$") + r"\Z")
_CURSOR_TIME = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,20})?(?:e[+-]?[0-9]{1,3})?\Z")


class InvalidCursor(ValueError):
    """A cursor that `next_cursor` never gave: refused before it reaches Redis."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


@dataclass(frozen=True)
class DoneChunk:
    seconds: float
    carry: bytes | None
    run: int = 0
    """The attempt whose run stored the chunk's audio (0: recorded before runs were numbered)."""
    part: str = ""
    """The storage key of the checkpoint part object holding the chunk (`UnitStore.checkpoint`; empty:
    a chunk stored as its own object, `storage_keys.checkpoint_key`)."""
    offset: int = 0
    """The chunk's first sample in its part."""
    samples: int = 0
    """The chunk's length in samples (0: the whole object)."""
    quality: dict[str, Any] | None = None
    """The kept draw's quality check (`worker.qc.ChunkCheck.to_dict`); None when none was recorded."""
    error: dict[str, str] | None = None
    """`{code, message}`: the engine could not synthesise this chunk of a line sheet (no audio; its line
    fails, `worker.render_job`)."""


class JobStore:
    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int) -> None:
        # redis-py types every reply as "sync or async"; this client is synchronous, so replies are plain values.
        self._redis: Any = client
        self._prefix = prefix
        self.retention = retention_seconds
        # The scripts that change a job's status carry the status index helper.
        self._transition = self._redis.register_script(_STATUS_INDEX_LUA + _TRANSITION)
        self._backfill_status_index = self._redis.register_script(_BACKFILL_STATUS_INDEX)
        self._set_inputs = self._redis.register_script(_SET_INPUTS)
        self._units: UnitStore | None = None

    def attach_units(self, units: UnitStore) -> None:
        """The scheduler of this deployment (`UnitStore` calls it): from now on `create` queues each new
        job's plan unit in the same transaction, `cancel` stops the job's units with its status, and
        `delete` forgets them."""
        self._units = units

    # --- keys -------------------------------------------------------------------------------------
    def _job(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def _chunks(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}:chunks"

    def _revisions(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}:revisions"

    def _cleanup(self) -> str:
        return f"{self._prefix}:cleanup"

    def _tenant_index(self, tenant: str) -> str:
        return f"{self._prefix}:tenant:{tenant}:jobs"

    def _status_index(self, tenant: str, status: JobStatus) -> str:
        return f"{self._tenant_index(tenant)}:{status.value}"

    def _status_index_built(self, tenant: str) -> str:
        return f"{self._tenant_index(tenant)}:by-status-built"

    def _queued(self) -> str:
        return f"{self._prefix}:queued"

    def _idem(self, tenant: str, key: str) -> str:
        return f"{self._prefix}:idem:{tenant}:{key}"

    # --- creation ---------------------------------------------------------------------------------
    def create(
        self,
        tenant: str,
        spec: JobCreate,
        *,
        body_hash: str,
        idempotency_key: str | None = None,
        revision: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Store a new queued job; returns (job id, created). With an idempotency key already used for
        the same body, returns the earlier job and created=False. `revision`: the job is a pickup of
        `revision["parent"]` (`shared.revisions`), listed under that job."""
        if idempotency_key:
            existing = self._idempotent_job(tenant, idempotency_key, body_hash)
            if existing:
                return existing, False
        job_id = "job_" + secrets.token_urlsafe(18)
        now = utcnow()
        summary = {
            "voice": spec.voice,
            "language": spec.language,
            "format": spec.format,
            "sample_rate": spec.sample_rate,
            "concatenate": spec.concatenate,
            "metadata": spec.metadata,
            "webhook_url": spec.webhook_url,
        }
        inputs = [
            {
                "id": input_id,
                "chars": len(item.spoken_text),
                "voice": item.voice,
                "language": item.language or spec.language,
            }
            for input_id, item in zip(spec.input_ids(), spec.inputs, strict=True)
        ]
        pipe = self._redis.pipeline()
        pipe.hset(
            self._job(job_id),
            mapping={
                "tenant": tenant,
                "status": JobStatus.QUEUED.value,
                "created_at": repr(now),
                "spec": spec.model_dump_json(),
                "summary": json.dumps(summary),
                "inputs": json.dumps(inputs),
                "chunks_done": 0,
                "chunks_total": 0,
                "audio_seconds": 0,
                "synth_seconds": 0,
                "attempts": 0,
                "priority": spec.priority.value,
                **({"idempotency_key": idempotency_key} if idempotency_key else {}),
                **({"revision": json.dumps(revision), "revision_of": revision["parent"]} if revision else {}),
            },
        )
        pipe.expire(self._job(job_id), self.retention)
        if revision:
            pipe.zadd(self._revisions(revision["parent"]), {job_id: now})
            pipe.expire(self._revisions(revision["parent"]), self.retention)
        for index in (self._tenant_index(tenant), *(self._status_index(tenant, s) for s in JobStatus)):
            pipe.zremrangebyscore(index, "-inf", now - self.retention - 3600)
        pipe.zadd(self._tenant_index(tenant), {job_id: now})
        pipe.expire(self._tenant_index(tenant), self.retention + 3600)
        pipe.zadd(self._status_index(tenant, JobStatus.QUEUED), {job_id: now})
        pipe.expire(self._status_index(tenant, JobStatus.QUEUED), self.retention + 3600)
        pipe.zadd(self._queued(), {job_id: now})
        if self._units is not None:
            self._units.stage_plan(pipe, job_id)
        pipe.execute()
        if idempotency_key:
            record = json.dumps({"hash": body_hash, "job": job_id})
            if not self._redis.set(self._idem(tenant, idempotency_key), record, nx=True, ex=self.retention):
                # Lost a race with an identical request: keep theirs, drop ours.
                self.delete(job_id)
                existing = self._idempotent_job(tenant, idempotency_key, body_hash)
                if existing:
                    return existing, False
                raise IdempotencyConflict(idempotency_key)
        return job_id, True

    def _idempotent_job(self, tenant: str, key: str, body_hash: str) -> str | None:
        raw = self._redis.get(self._idem(tenant, key))
        if raw is None:
            return None
        record = json.loads(raw)
        if record["hash"] != body_hash:
            raise IdempotencyConflict(key)
        return record["job"]

    def find_idempotent(self, tenant: str, key: str, body_hash: str) -> str | None:
        """The job an earlier request with this key and body created (IdempotencyConflict: another body)."""
        return self._idempotent_job(tenant, key, body_hash)

    def delete(self, job_id: str, *, idempotency: tuple[str, str] | None = None) -> None:
        """Remove every Redis trace of a job: its record, chunk list, index entries and its idempotency key
        (when that key still names this job). Used when a job could not be enqueued and by
        `DELETE /v1/jobs/{id}` of a finished job; its storage objects are the caller's
        (`shared.retention.remove_job`)."""
        tenant_raw, key_raw, parent = self._redis.hmget(self._job(job_id), ["tenant", "idempotency_key", "revision_of"])
        tenant = tenant_raw.decode() if tenant_raw else None
        idem_keys = [self._idem(*idempotency)] if idempotency else []
        if tenant and key_raw:
            raw = self._redis.get(self._idem(tenant, key_raw.decode()))
            if raw is not None and json.loads(raw).get("job") == job_id:  # not a racing twin's key
                idem_keys.append(self._idem(tenant, key_raw.decode()))
        if self._units is not None:
            self._units.forget_job(job_id)  # reads the record, so before it goes
        pipe = self._redis.pipeline()
        pipe.delete(self._job(job_id), self._chunks(job_id), self._revisions(job_id))
        pipe.zrem(self._queued(), job_id)
        if parent:
            pipe.zrem(self._revisions(parent.decode()), job_id)
        if tenant:
            pipe.zrem(self._tenant_index(tenant), job_id)
            for status in JobStatus:
                pipe.zrem(self._status_index(tenant, status), job_id)
        if idem_keys:
            pipe.delete(*idem_keys)
        pipe.execute()

    # --- reading ----------------------------------------------------------------------------------
    def tenant_of(self, job_id: str) -> str | None:
        raw = self._redis.hget(self._job(job_id), "tenant")
        return raw.decode() if raw else None

    def status(self, job_id: str) -> JobStatus | None:
        raw = self._redis.hget(self._job(job_id), "status")
        return JobStatus(raw.decode()) if raw else None

    def set_input_languages(self, job_id: str, languages: list[tuple[str, bool]]) -> bool:
        """Record the language each input is spoken in (`(tag, detected)`, in input order), as the plan
        resolved it; False when the job no longer exists. Planning is deterministic, so a repeat writes
        the same."""
        raw = self._redis.hget(self._job(job_id), "inputs")
        if raw is None:
            return False
        inputs = json.loads(raw)
        for item, (language, detected) in zip(inputs, languages, strict=True):
            item["language"], item["language_detected"] = language, detected
        return bool(self._set_inputs(keys=[self._job(job_id)], args=[json.dumps(inputs)]))

    def spec(self, job_id: str) -> JobCreate | None:
        raw = self._redis.hget(self._job(job_id), "spec")
        return JobCreate.model_validate_json(raw) if raw else None

    def revision(self, job_id: str) -> dict[str, Any] | None:
        """What a pickup job re-renders (`shared.revisions.RevisionRecord` as JSON); None for other jobs."""
        raw = self._redis.hget(self._job(job_id), "revision")
        return json.loads(raw) if raw else None

    def revisions(self, job_id: str) -> list[str]:
        """The pickup jobs of a job, oldest first."""
        return [raw.decode() for raw in self._redis.zrange(self._revisions(job_id), 0, -1)]

    def publish_version(
        self, job_id: str, *, revision: str, take: int, result: StoredResult, warnings: list[str]
    ) -> int | None:
        """Make `result` the job's newest version (its `result`; the earlier ones stay in `versions`, the
        original as version 1) and restart the record's retention. Once per revision: a repeat returns
        the same number. None: the job is gone or did not succeed."""
        key = self._job(job_id)

        def update(pipe: Any) -> int | None:
            status, raw, current, finished = pipe.hmget(key, ["status", "versions", "result", "finished_at"])
            if status is None or status.decode() != JobStatus.SUCCEEDED.value:
                return None
            versions = [StoredVersion.model_validate(item) for item in json.loads(raw or "[]")]
            for earlier in versions:
                if earlier.revision == revision:
                    return earlier.version
            if not versions:
                original = StoredResult.model_validate_json(current) if current else StoredResult()
                versions.append(StoredVersion(version=1, created_at=float(finished or 0), result=original))
            entry = StoredVersion(
                version=len(versions) + 1,
                created_at=utcnow(),
                revision=revision,
                take=take,
                result=result,
                warnings=warnings,
            )
            versions.append(entry)
            pipe.multi()
            dumped = json.dumps([item.model_dump(mode="json") for item in versions])
            pipe.hset(key, mapping={"versions": dumped, "result": result.model_dump_json()})
            pipe.expire(key, self.retention)
            pipe.expire(self._revisions(job_id), self.retention)
            return entry.version

        return self._redis.transaction(update, key, value_from_callable=True)

    def view(self, job_id: str, *, tenant: str | None = None) -> JobView | None:
        """The job as a client sees it; None when absent or owned by another tenant."""
        values = self._redis.hmget(self._job(job_id), _SUMMARY_FIELDS)
        return self._to_view(job_id, values, tenant)

    def _to_view(self, job_id: str, values: list[bytes | None], tenant: str | None) -> JobView | None:
        raw = {
            name: (value.decode() if value is not None else None)
            for name, value in zip(_SUMMARY_FIELDS, values, strict=True)
        }
        if raw["status"] is None or (tenant is not None and raw["tenant"] != tenant):
            return None
        summary = json.loads(raw["summary"] or "{}")
        done, total = int(raw["chunks_done"] or 0), int(raw["chunks_total"] or 0)
        audio, synth = float(raw["audio_seconds"] or 0), float(raw["synth_seconds"] or 0)
        status = JobStatus(raw["status"])
        percent = 100.0 if status == JobStatus.SUCCEEDED else (round(100.0 * done / total, 1) if total else 0.0)
        stored = StoredResult.model_validate_json(raw["result"]) if raw["result"] else StoredResult()
        return JobView(
            id=job_id,
            status=status,
            created_at=to_datetime(float(raw["created_at"] or 0)),
            started_at=to_datetime(float(raw["started_at"])) if raw["started_at"] else None,
            finished_at=to_datetime(float(raw["finished_at"])) if raw["finished_at"] else None,
            voice=summary.get("voice"),
            language=summary.get("language"),
            format=summary.get("format", "mp3"),
            sample_rate=summary.get("sample_rate"),
            concatenate=summary.get("concatenate", True),
            metadata=summary.get("metadata", {}),
            priority=JobPriority(raw["priority"] or JobPriority.NORMAL),
            progress=Progress(chunks_done=done, chunks_total=total, percent=percent, audio_seconds=round(audio, 3)),
            rtf=round(synth / audio, 4) if audio > 0 else None,
            attempts=int(raw["attempts"] or 0),
            timings=json.loads(raw["timings"] or "{}"),
            # Result links are minted at read time from `stored` (shared.downloads.mint_view).
            inputs=_line_statuses([InputView(**item) for item in json.loads(raw["inputs"] or "[]")], stored),
            quality=stored.quality,
            error=JobError(**json.loads(raw["error"])) if raw["error"] else None,
            webhook_url=summary.get("webhook_url"),
            usage=Usage(
                characters=_characters(raw["inputs"]),
                audio_seconds=round(audio, 3),
                engine_seconds=round(synth, 3),
                lines_reused=len(stored.reused),
            ),
            lines=_line_counts(stored),
            revision_of=raw["revision_of"],
        ).with_stored_result(stored, [StoredVersion.model_validate(v) for v in json.loads(raw["versions"] or "[]")])

    def list(
        self, tenant: str, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None
    ) -> JobPage:
        """Newest first. The cursor is the creation time of the last job returned (exclusive).

        With a status, the tenant's index of that status is read, so a page reads about `limit` records
        however many jobs of other statuses the tenant has."""
        if status is None:
            index = self._tenant_index(tenant)
        else:
            self._ensure_status_index(tenant)
            index = self._status_index(tenant, status)
        upper = "+inf" if cursor is None else f"({_decode_cursor(cursor)!r}"
        views: list[JobView] = []
        last_score: float | None = None
        exhausted = False
        while len(views) < limit and not exhausted:
            batch = self._redis.zrevrangebyscore(index, upper, "-inf", start=0, num=limit, withscores=True)
            exhausted = len(batch) < limit
            pipe = self._redis.pipeline()
            for member, _ in batch:
                pipe.hmget(self._job(member.decode()), _SUMMARY_FIELDS)
            rows = pipe.execute()
            for (member, score), values in zip(batch, rows, strict=True):
                upper = f"({score!r}"
                job_id = member.decode()
                view = self._to_view(job_id, values, tenant)
                if view is None:  # expired record
                    self._redis.zrem(self._tenant_index(tenant), job_id)
                    if status is not None:
                        self._redis.zrem(index, job_id)
                    continue
                if status is not None and view.status != status:
                    continue  # moved on between the two reads (the move has already re-indexed it)
                views.append(view)
                last_score = score
                if len(views) == limit:
                    break
        more = (
            len(views) == limit
            and last_score is not None
            and bool(self._redis.zrevrangebyscore(index, f"({last_score!r}", "-inf", start=0, num=1))
        )
        return JobPage(data=views, next_cursor=_encode_cursor(last_score) if more and last_score is not None else None)

    def _ensure_status_index(self, tenant: str, batch: int = 1000) -> None:
        """Index the statuses of this tenant's jobs stored before the status index existed, once (jobs
        created since are indexed as they are stored)."""
        if self._redis.exists(self._status_index_built(tenant)):
            return
        after = "-inf"
        while True:
            last = self._backfill_status_index(keys=[self._tenant_index(tenant)], args=[self._job(""), after, batch])
            if not last:
                break
            after = f"({last.decode()}"  # the score of the batch's last job
        self._redis.set(self._status_index_built(tenant), 1, ex=self.retention + 3600)

    def queued_count(self) -> int:
        return int(self._redis.zcard(self._queued()))

    # --- transitions ------------------------------------------------------------------------------
    def transition(self, job_id: str, allowed: Iterable[JobStatus], new: JobStatus, **fields: Any) -> tuple[str, str]:
        """Atomically move a job to `new` if its status is one of `allowed`.

        Returns ("ok", old) / ("refused", current) / ("missing", "")."""
        args: list[Any] = [job_id, ",".join(s.value for s in allowed), new.value]
        for name, value in fields.items():
            args += [name, _encode(value)]
        outcome, old = self._transition(keys=[self._job(job_id), self._queued()], args=args)
        return outcome.decode(), old.decode()

    def cancel(self, job_id: str) -> tuple[str, str]:
        """queued | running -> canceled: ("ok", old) / ("refused", current) / ("missing", ""). With the
        scheduler attached, its units stop in the same script (none stays ready; holders stop at their
        next write)."""
        error = {"code": "canceled", "message": "The job was canceled by the client."}
        if self._units is not None:
            return self._units.cancel(job_id, error=error)
        return self.transition(
            job_id, (JobStatus.QUEUED, JobStatus.RUNNING), JobStatus.CANCELED, finished_at=utcnow(), error=error
        )

    # --- storage clean-up that failed, retried later ----------------------------------------------
    def defer_cleanup(self, prefix: str) -> None:
        """Remember a storage prefix whose deletion failed (storage unreachable), to be retried."""
        self._redis.sadd(self._cleanup(), prefix)

    def deferred_cleanups(self, limit: int = 50) -> list[str]:
        return sorted(raw.decode() for raw in self._redis.srandmember(self._cleanup(), limit) or [])

    def cleanup_done(self, prefix: str) -> None:
        self._redis.srem(self._cleanup(), prefix)

    # --- chunk checkpoints ------------------------------------------------------------------------
    def done_chunks(self, job_id: str) -> dict[str, DoneChunk]:
        out: dict[str, DoneChunk] = {}
        for key, raw in self._redis.hgetall(self._chunks(job_id)).items():
            record = json.loads(raw)
            carry = base64.b64decode(record["carry"]) if record["carry"] else None
            out[key.decode()] = DoneChunk(
                float(record["seconds"]),
                carry,
                int(record.get("run", 0)),
                part=record.get("part", ""),
                offset=int(record.get("offset", 0)),
                samples=int(record.get("samples", 0)),
                quality=record.get("quality"),
                error=record.get("error"),
            )
        return out

    def counters(self, job_id: str) -> dict[str, float]:
        names = (
            "chunks_done", "chunks_total", "chunks_synthesized", "audio_seconds", "synth_seconds", "attempts",
            "units_total",
        )  # fmt: skip
        values = self._redis.hmget(self._job(job_id), names)
        return {name: float(value or 0) for name, value in zip(names, values, strict=True)}

    # --- engine info (written by workers, read by the API) ----------------------------------------
    def publish_engine(self, info: dict[str, Any]) -> None:
        self._redis.set(f"{self._prefix}:engine", json.dumps(info))

    def engine_info(self) -> dict[str, Any] | None:
        raw = self._redis.get(f"{self._prefix}:engine")
        return json.loads(raw) if raw else None

    # --- learned speech rate (per engine and language) -----------------------------------------
    def speech_rate(self, engine: str, language: str) -> dict[str, Any] | None:
        raw = self._redis.get(f"{self._prefix}:rate:{engine}:{language}")
        return json.loads(raw) if raw else None

    def save_speech_rate(self, engine: str, language: str, state: dict[str, Any]) -> None:
        self._redis.set(f"{self._prefix}:rate:{engine}:{language}", json.dumps(state))

    # --- secrets shared by every process of a deployment ----------------------------------------
    def shared_secret(self, name: str) -> bytes:
        """A random secret created once (SET NX) and then read by every process: all gunicorn workers and
        every restart sign and check with the same key."""
        key = f"{self._prefix}:secret:{name}"
        self._redis.set(key, secrets.token_urlsafe(32), nx=True)
        return self._redis.get(key)

    def ping(self) -> None:
        self._redis.ping()


def _is_line_batch(stored: StoredResult) -> bool:
    return stored.manifest is not None and stored.file is None


def _line_statuses(inputs: list[InputView], stored: StoredResult) -> list[InputView]:
    """Each line of a finished batch with its status, whether it was reused, and its error."""
    if not _is_line_batch(stored):
        return inputs
    reused = set(stored.reused)
    for item in inputs:
        item.status = LineStatus.FAILED if item.id in stored.failed else LineStatus.SUCCEEDED
        item.error = stored.failed.get(item.id)
        item.reused = item.id in reused
    return inputs


def _line_counts(stored: StoredResult) -> LineCounts | None:
    if not _is_line_batch(stored):
        return None
    reused = len(stored.reused)
    return LineCounts(
        succeeded=len(stored.inputs), failed=len(stored.failed), reused=reused, synthesised=len(stored.inputs) - reused
    )


def _characters(inputs: str | None) -> int:
    return sum(int(item["chars"]) for item in json.loads(inputs or "[]"))


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def _encode_cursor(score: float) -> str:
    return base64.urlsafe_b64encode(repr(score).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> float:
    """The creation time a cursor holds; strict, since Redis answers an error, not an empty page, to a
    score such as `nan`."""
    if not _CURSOR.match(cursor):
        raise InvalidCursor(cursor)
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidCursor(cursor) from exc
    if not _CURSOR_TIME.match(text) or not math.isfinite(score := float(text)):
        raise InvalidCursor(cursor)
    return score
