"""The scheduler: a job's work as units (plan, speak, assemble), leased one at a time to worker threads.

Every unit lives in Redis and changes state only inside a Lua script, so concurrent workers on any
number of machines agree on who holds what:

- ready units wait in one lexicographic zset per (priority, kind, tenant), ordered by the job's creation
  time, then plan < speak < assemble, then the speak unit's index; a zset per (priority, kind) holds the
  tenants with ready units, scored by (units leased now, last served), so `take` finds the best unit in
  O(log n) whatever the backlog;
- a leased unit is named by its lease token in the job's unit hash (fencing: every write of a holder
  checks it first and raises `LeaseLost` when another took over) and sits in a zset per priority scored
  by lease expiry, and a speak unit in one scored by its last progress, so `sweep` finds expired or
  stalled units in O(log n);
- a unit handed back with a delay (a storage outage) waits in a zset scored by when it may run again.

A job's status moves with its units (queued -> running at the first claim, running -> succeeded |
failed from the unit calls), always through `move_status_index` (shared/store.py). Lease times use the
Redis server's clock (one clock for every worker machine); record timestamps are the callers' as
everywhere else in the store.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import redis

from shared import lease
from shared.jobs import JobPriority, JobStatus, utcnow
from shared.store import _STATUS_INDEX_LUA

if TYPE_CHECKING:
    from shared.store import JobStore

PLAN_UNIT = -1
"""The unit index of a job's plan unit."""
ASSEMBLE_UNIT = -2
"""The unit index of a job's assemble unit."""


class UnitKind(StrEnum):
    PLAN = "plan"
    SPEAK = "speak"
    ASSEMBLE = "assemble"


ALL_KINDS = frozenset(UnitKind)
PRIORITY_ORDER = (JobPriority.INTERACTIVE, JobPriority.NORMAL, JobPriority.BATCH)
"""Priority classes in the order `take` serves them."""


def kind_of(unit: int) -> UnitKind:
    if unit == PLAN_UNIT:
        return UnitKind.PLAN
    if unit == ASSEMBLE_UNIT:
        return UnitKind.ASSEMBLE
    return UnitKind.SPEAK


@dataclass(frozen=True)
class UnitClaim:
    job_id: str
    unit: int
    """0..n-1 for speak units; `PLAN_UNIT` (-1), `ASSEMBLE_UNIT` (-2)."""
    kind: UnitKind
    token: str
    """`shared.lease.new_token()`: fences every later write of this holder."""
    attempts: int
    """This unit's claims so far, this one included (names run-scoped storage keys)."""
    tenant: str
    priority: JobPriority


@dataclass(frozen=True)
class Exhausted:
    """`take` found a unit claimed `max_attempts` times already: its job is now failed with `error`."""

    job_id: str
    tenant: str
    error: dict[str, str]


@dataclass(frozen=True)
class DurableChunk:
    """One chunk inside a checkpoint part object."""

    key: str
    """The chunk key (`worker.planning.chunk_key`)."""
    offset: int
    """First sample of the chunk in the part."""
    samples: int
    seconds: float
    synth_seconds: float
    carry: bytes | None
    quality: dict[str, Any] | None = None
    """The kept draw's quality check (`worker.qc.ChunkCheck.to_dict`); None when none was made."""
    error: dict[str, str] | None = None
    """`{code, message}` of a line sheet's chunk the engine could not synthesise (no samples): its line fails."""


@dataclass(frozen=True)
class UnitState:
    kind: UnitKind
    index: int
    state: str
    """ready | leased | waiting (handed back with a delay) | done | stopped (its job ended)."""
    attempts: int
    holder: str = ""
    """`host:pid` of the process that holds it (leased) or last held it; empty before its first claim."""
    live: int = 0
    """Chunks its holder generated that are not checkpointed yet."""


_LIB = """
local P = ''
local LOST = -1
local PRIOS = {'interactive', 'normal', 'batch'}
local KINDS = {'plan', 'speak', 'assemble'}

local function jkey(job) return P .. ':job:' .. job end
local function ukey(job) return P .. ':job:' .. job .. ':units' end
local function ready_key(prio, kind, tenant) return P .. ':units:ready:' .. prio .. ':' .. kind .. ':' .. tenant end
local function tenants_key(prio, kind) return P .. ':units:tenants:' .. prio .. ':' .. kind end
local function leases_key(prio) return P .. ':units:leases:' .. prio end
local function progress_key(prio) return P .. ':units:progress:' .. prio end
local function waiting_key() return P .. ':units:waiting' end
local function leased_count_key() return P .. ':units:leased-by-tenant' end
local function served_key() return P .. ':units:served' end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function kind_of(u)
  if u == -1 then return 'plan' elseif u == -2 then return 'assemble' end
  return 'speak'
end

-- Ready members sort as the job's creation time (microseconds), the job, plan < speak < assemble, index.
local function member(job, u, created)
  local rank, idx = 1, u
  if u == -1 then rank, idx = 0, 0 elseif u == -2 then rank, idx = 2, 0 end
  return string.format('%016d:%s:%d:%08d', math.floor(tonumber(created) * 1000000), job, rank, idx)
end

local function parse_member(m)
  local job, rank, idx = string.match(m, '^%d+:(.+):(%d):(%d+)$')
  rank = tonumber(rank)
  if rank == 0 then return job, -1 elseif rank == 2 then return job, -2 end
  return job, tonumber(idx)
end

local function lease_member(job, u) return job .. ':' .. u end
local function parse_lease_member(m)
  local job, u = string.match(m, '^(.+):(-?%d+)$')
  return job, tonumber(u)
end

local function job_info(job)
  local v = redis.call('HMGET', jkey(job), 'status', 'tenant', 'priority', 'created_at')
  return v[1], v[2], v[3] or 'normal', v[4]
end

-- Tenants with ready units are served fewest-leased first, then longest-ago served first.
local function tenant_score(tenant)
  local leased = tonumber(redis.call('HGET', leased_count_key(), tenant) or '0')
  local served = tonumber(redis.call('HGET', served_key(), tenant) or '0')
  return leased * 10000000000 + served
end

local function rescore(tenant)
  local s = tenant_score(tenant)
  for _, p in ipairs(PRIOS) do
    for _, k in ipairs(KINDS) do redis.call('ZADD', tenants_key(p, k), 'XX', s, tenant) end
  end
end

local function keep_with_job(job)
  local ttl = redis.call('PTTL', jkey(job))
  if ttl > 0 then redis.call('PEXPIRE', ukey(job), ttl) end
end

local function make_ready(job, u, tenant, prio, created)
  local k = kind_of(u)
  redis.call('HSET', ukey(job), u .. ':s', 'ready')
  redis.call('ZADD', ready_key(prio, k, tenant), 0, member(job, u, created))
  redis.call('ZADD', tenants_key(prio, k), 'NX', tenant_score(tenant), tenant)
end

local function unready(job, u, tenant, prio, created)
  local k = kind_of(u)
  local rk = ready_key(prio, k, tenant)
  redis.call('ZREM', rk, member(job, u, created))
  if redis.call('ZCARD', rk) == 0 then redis.call('ZREM', tenants_key(prio, k), tenant) end
end

local function lease_start(job, u, tenant, prio, now, lease_ms)
  local m = lease_member(job, u)
  redis.call('ZADD', leases_key(prio), now + lease_ms, m)
  if u >= 0 then redis.call('ZADD', progress_key(prio), now, m) end
  redis.call('HINCRBY', leased_count_key(), tenant, 1)
  redis.call('HSET', served_key(), tenant, redis.call('INCR', P .. ':units:served-seq'))
  rescore(tenant)
end

local function lease_end(job, u, tenant, prio)
  local m = lease_member(job, u)
  redis.call('ZREM', progress_key(prio), m)
  if redis.call('ZREM', leases_key(prio), m) == 1 and tenant then
    if redis.call('HINCRBY', leased_count_key(), tenant, -1) <= 0 then
      redis.call('HDEL', leased_count_key(), tenant)
    end
    rescore(tenant)
  end
end

-- Chunks generated by the unit's holder but not checkpointed no longer count as done.
local function drop_live(job, u)
  local uk, jk = ukey(job), jkey(job)
  local v = redis.call('HMGET', uk, u .. ':n', u .. ':as', u .. ':ss')
  local n = tonumber(v[1] or '0')
  if n > 0 then
    redis.call('HINCRBY', jk, 'chunks_done', -n)
    redis.call('HINCRBYFLOAT', jk, 'audio_seconds', -tonumber(v[2] or '0'))
    redis.call('HINCRBYFLOAT', jk, 'synth_seconds', -tonumber(v[3] or '0'))
  end
  redis.call('HDEL', uk, u .. ':n', u .. ':as', u .. ':ss')
  return n
end

-- The unit leaves its holder unfinished: ready again now, or after `delay_ms` (then it waits).
local function give_back(job, u, tenant, prio, created, code, message, now, delay_ms)
  local uk = ukey(job)
  drop_live(job, u)
  redis.call('HSET', uk, u .. ':r', cjson.encode({code = code, message = message}))
  redis.call('HDEL', uk, u .. ':t')
  lease_end(job, u, tenant, prio)
  if delay_ms > 0 then
    redis.call('HSET', uk, u .. ':s', 'waiting')
    redis.call('ZADD', waiting_key(), now + delay_ms, lease_member(job, u))
  else
    make_ready(job, u, tenant, prio, created)
  end
end

-- The job stopped running: none of its units is ready, waiting or leased any more. Holders keep their
-- token, so their next write learns that the job stopped (not that they lost their lease).
local function stop_units(job, tenant, prio, created)
  local uk = ukey(job)
  local n = tonumber(redis.call('HGET', uk, 'n') or '0')
  for u = -2, n - 1 do
    local s = redis.call('HGET', uk, u .. ':s')
    if s == 'ready' then unready(job, u, tenant, prio, created)
    elseif s == 'leased' then lease_end(job, u, tenant, prio)
    elseif s == 'waiting' then redis.call('ZREM', waiting_key(), lease_member(job, u)) end
    if s == 'ready' or s == 'leased' or s == 'waiting' then redis.call('HSET', uk, u .. ':s', 'stopped') end
  end
end

-- A fenced call found its job no longer running: end the caller's lease.
local function stopped_here(job, u, tenant, prio)
  if redis.call('HGET', ukey(job), u .. ':s') == 'leased' then
    lease_end(job, u, tenant, prio)
    redis.call('HSET', ukey(job), u .. ':s', 'stopped')
  end
end

local function fenced(job, u, token)
  return redis.call('HGET', ukey(job), u .. ':t') == token
end

-- running -> succeeded | failed (or queued -> failed): the record's final fields, its retention, its
-- units stopped, its chunk records gone.
local function end_job(job, new_status, fields, retention)
  local jk = jkey(job)
  local status, tenant, prio, created = job_info(job)
  redis.call('HSET', jk, 'status', new_status)
  move_status_index(jk, job, status, new_status)  -- status index
  for i = 1, #fields, 2 do redis.call('HSET', jk, fields[i], fields[i + 1]) end
  redis.call('ZREM', P .. ':queued', job)
  redis.call('EXPIRE', jk, retention)
  redis.call('DEL', jk .. ':chunks')
  stop_units(job, tenant, prio, created)
  redis.call('EXPIRE', ukey(job), retention)
end
"""

_LIB = _STATUS_INDEX_LUA + _LIB

# ARGV: prefix, job id. Runs inside JobStore.create's transaction, after the record is written.
_ADD_PLAN = (
    _LIB
    + """
P = ARGV[1]
local job = ARGV[2]
local status, tenant, prio, created = job_info(job)
if status ~= 'queued' then return 0 end
redis.call('HSET', ukey(job), '-1:a', 0)
make_ready(job, -1, tenant, prio, created)
keep_with_job(job)
return 1
"""
)

# ARGV: prefix, max attempts, lease ms, token, kinds (space separated), now (record time), retention.
_TAKE = (
    _LIB
    + """
P = ARGV[1]
local max_attempts, lease_ms, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local kinds = {}
for k in string.gmatch(ARGV[5], '%S+') do table.insert(kinds, k) end
local record_now, retention = ARGV[6], tonumber(ARGV[7])
for _, prio in ipairs(PRIOS) do
  while true do
    local tenant, best = nil, nil
    for _, k in ipairs(kinds) do
      local head = redis.call('ZRANGE', tenants_key(prio, k), 0, 0, 'WITHSCORES')
      if head[1] then
        local score = tonumber(head[2])
        if not best or score < best or (score == best and head[1] < tenant) then tenant, best = head[1], score end
      end
    end
    if not tenant then break end
    local m = nil
    for _, k in ipairs(kinds) do
      local head = redis.call('ZRANGE', ready_key(prio, k, tenant), 0, 0)
      if head[1] and (not m or head[1] < m) then m = head[1] end
    end
    local job, u = parse_member(m)
    local status, jtenant, jprio, created = job_info(job)
    local uk = ukey(job)
    if (status ~= 'queued' and status ~= 'running') or redis.call('HGET', uk, u .. ':s') ~= 'ready' then
      -- the job stopped running (canceled, failed, deleted, expired): drop the unit on the way
      redis.call('ZREM', ready_key(prio, kind_of(u), tenant), m)
      if redis.call('ZCARD', ready_key(prio, kind_of(u), tenant)) == 0 then
        redis.call('ZREM', tenants_key(prio, kind_of(u)), tenant)
      end
      if status and redis.call('HGET', uk, u .. ':s') == 'ready' then redis.call('HSET', uk, u .. ':s', 'stopped') end
    else
      unready(job, u, tenant, prio, created)
      local attempts = tonumber(redis.call('HGET', uk, u .. ':a') or '0')
      if attempts >= max_attempts then
        local reason = redis.call('HGET', uk, u .. ':r')
        local why = reason and cjson.decode(reason) or {code = 'worker_lost', message = 'Its worker stopped.'}
        local error = cjson.encode({
          code = why.code,
          message = 'A ' .. kind_of(u) .. ' unit of this job was tried ' .. attempts .. ' times; giving up. ' ..
            'The last time: ' .. why.message,
        })
        redis.call('HSET', uk, u .. ':s', 'stopped')
        end_job(job, 'failed', {'finished_at', record_now, 'error', error}, retention)
        return {'exhausted', job, tenant, error}
      end
      attempts = attempts + 1
      redis.call('HSET', uk, u .. ':a', attempts, u .. ':s', 'leased', u .. ':t', token)
      lease_start(job, u, tenant, prio, now_ms(), lease_ms)
      local jk = jkey(job)
      if status == 'queued' then
        redis.call('HSET', jk, 'status', 'running')
        move_status_index(jk, job, 'queued', 'running')  -- status index
        redis.call('ZREM', P .. ':queued', job)
        if not redis.call('HGET', jk, 'started_at') then redis.call('HSET', jk, 'started_at', record_now) end
      end
      if attempts > tonumber(redis.call('HGET', jk, 'attempts') or '0') then
        redis.call('HSET', jk, 'attempts', attempts)
      end
      keep_with_job(job)
      return {'claimed', job, tostring(u), tostring(attempts), tenant, prio}
    end
  end
end
return {'none'}
"""
)

# ARGV: prefix, job, unit, token, lease ms.
_RENEW = (
    _LIB
    + """
P = ARGV[1]
local job, u, token = ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not fenced(job, u, token) or redis.call('HGET', ukey(job), u .. ':s') ~= 'leased' then return 0 end
local status, tenant, prio = job_info(job)
redis.call('ZADD', leases_key(prio), 'XX', now_ms() + tonumber(ARGV[5]), lease_member(job, u))
return 1
"""
)

# Common head of the fenced writes: LOST for another holder, 0 (and the lease ended) for a stopped job.
_FENCED_HEAD = """
P = ARGV[1]
local job, u, token = ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not fenced(job, u, token) then return LOST end
local status, tenant, prio, created = job_info(job)
if status ~= 'running' then
  if status then stopped_here(job, u, tenant, prio) end
  return 0
end
local uk, jk = ukey(job), jkey(job)
if redis.call('HGET', uk, u .. ':s') ~= 'leased' then return 0 end
"""

# ARGV: head, plan JSON, chunks total, engine, then each speak unit's chunk JSON. Returns the units made
# ready, or -2 when the job stopped running.
_REGISTER_PLAN = (
    _LIB
    + """
P = ARGV[1]
local job, u, token = ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not fenced(job, u, token) then return LOST end
local status, tenant, prio, created = job_info(job)
local uk, jk = ukey(job), jkey(job)
local n = #ARGV - 7
if redis.call('HGET', uk, '-1:s') == 'done' then return math.max(n, 1) end  -- a repeat
if status ~= 'running' then
  if status then stopped_here(job, u, tenant, prio) end
  return -2
end
redis.call('HSET', uk, 'plan', ARGV[5], 'n', n, 'done', 0)
redis.call('HSET', jk, 'chunks_total', ARGV[6], 'units_total', n, 'engine', ARGV[7])
for i = 0, n - 1 do
  redis.call('HSET', uk, i .. ':c', ARGV[8 + i], i .. ':a', 0)
  make_ready(job, i, tenant, prio, created)
end
if n == 0 then
  redis.call('HSET', uk, '-2:a', 0)
  make_ready(job, -2, tenant, prio, created)
end
redis.call('HSET', uk, '-1:s', 'done')
lease_end(job, -1, tenant, prio)
keep_with_job(job)
return math.max(n, 1)
"""
)

# ARGV: head, seconds, synth seconds.
_PROGRESS = (
    _LIB
    + _FENCED_HEAD
    + """
redis.call('HINCRBY', jk, 'chunks_done', 1)
redis.call('HINCRBY', jk, 'chunks_synthesized', 1)
redis.call('HINCRBYFLOAT', jk, 'audio_seconds', ARGV[5])
redis.call('HINCRBYFLOAT', jk, 'synth_seconds', ARGV[6])
redis.call('HINCRBY', uk, u .. ':n', 1)
redis.call('HINCRBYFLOAT', uk, u .. ':as', ARGV[5])
redis.call('HINCRBYFLOAT', uk, u .. ':ss', ARGV[6])
redis.call('ZADD', progress_key(prio), 'XX', now_ms(), lease_member(job, u))
return 1
"""
)

# ARGV: head, then per chunk: key, record JSON, seconds, synth seconds. A chunk the holder reported by
# `progress` moves from live to durable; one it did not is counted now; a duplicate of a chunk already
# durable undoes its live count.
_CHECKPOINT = (
    _LIB
    + _FENCED_HEAD
    + """
local ck = jk .. ':chunks'
for i = 5, #ARGV, 4 do
  local seconds, synth = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local new = redis.call('HSETNX', ck, ARGV[i], ARGV[i + 1]) == 1
  local live = tonumber(redis.call('HGET', uk, u .. ':n') or '0')
  if live > 0 then
    if live == 1 then
      redis.call('HDEL', uk, u .. ':n', u .. ':as', u .. ':ss')
    else
      redis.call('HINCRBY', uk, u .. ':n', -1)
      redis.call('HINCRBYFLOAT', uk, u .. ':as', -seconds)
      redis.call('HINCRBYFLOAT', uk, u .. ':ss', -synth)
    end
    if not new then
      redis.call('HINCRBY', jk, 'chunks_done', -1)
      redis.call('HINCRBYFLOAT', jk, 'audio_seconds', -seconds)
      redis.call('HINCRBYFLOAT', jk, 'synth_seconds', -synth)
    end
  elseif new then
    redis.call('HINCRBY', jk, 'chunks_done', 1)
    redis.call('HINCRBYFLOAT', jk, 'audio_seconds', seconds)
    redis.call('HINCRBYFLOAT', jk, 'synth_seconds', synth)
  end
end
local ttl = redis.call('PTTL', jk)
if ttl > 0 then redis.call('PEXPIRE', ck, ttl) end
redis.call('ZADD', progress_key(prio), 'XX', now_ms(), lease_member(job, u))
return 1
"""
)

# ARGV: head. 2: the job's last speak unit (its assemble unit is ready now), 1: done, 0: stopped.
_FINISH_UNIT = (
    _LIB
    + """
P = ARGV[1]
local job, u, token = ARGV[2], tonumber(ARGV[3]), ARGV[4]
if not fenced(job, u, token) then return LOST end
local uk = ukey(job)
if redis.call('HGET', uk, u .. ':s') == 'done' then return 1 end  -- a repeat
local status, tenant, prio, created = job_info(job)
if status ~= 'running' or redis.call('HGET', uk, u .. ':s') ~= 'leased' then
  if status then stopped_here(job, u, tenant, prio) end
  return 0
end
drop_live(job, u)  -- all of a finished unit's chunks are checkpointed; anything else does not count
redis.call('HSET', uk, u .. ':s', 'done')
lease_end(job, u, tenant, prio)
local done = redis.call('HINCRBY', uk, 'done', 1)
if done == tonumber(redis.call('HGET', uk, 'n') or '0') then
  redis.call('HSET', uk, '-2:a', 0)
  make_ready(job, -2, tenant, prio, created)
  return 2
end
return 1
"""
)

# ARGV: head, code, message, delay ms.
_HAND_BACK = (
    _LIB
    + _FENCED_HEAD
    + """
local delay = tonumber(ARGV[7])
give_back(job, u, tenant, prio, created, ARGV[5], ARGV[6], now_ms(), delay)
return 1
"""
)

# ARGV: head, new status, retention, then field/value pairs.
_END_JOB = (
    _LIB
    + _FENCED_HEAD
    + """
local fields = {}
for i = 7, #ARGV do table.insert(fields, ARGV[i]) end
if ARGV[5] == 'succeeded' then redis.call('HSET', uk, u .. ':s', 'done') end
lease_end(job, u, tenant, prio)
end_job(job, ARGV[5], fields, tonumber(ARGV[6]))
return 1
"""
)

# ARGV: prefix, now ms ('' = the server's clock), stall ms, most units per kind of scan.
_SWEEP = (
    _LIB
    + """
P = ARGV[1]
local now = ARGV[2] ~= '' and tonumber(ARGV[2]) or now_ms()
local stall, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local made_ready = 0
local function recover(m, code, message, expected)
  local job, u = parse_lease_member(m)
  local status, tenant, prio, created = job_info(job)
  local uk = ukey(job)
  local state = redis.call('HGET', uk, u .. ':s')
  if state ~= expected then
    return
  end
  if status ~= 'running' then
    if status then stopped_here(job, u, tenant, prio) end
    return
  end
  if expected == 'waiting' then
    make_ready(job, u, tenant, prio, created)
  else
    give_back(job, u, tenant, prio, created, code, message, now, 0)
  end
  made_ready = made_ready + 1
end
for _, prio in ipairs(PRIOS) do
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', leases_key(prio), '-inf', now, 'LIMIT', 0, limit)) do
    recover(m, 'worker_lost', 'its worker stopped renewing its lease (the worker died or lost Redis).', 'leased')
    redis.call('ZREM', leases_key(prio), m)  -- of a job that is gone
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', progress_key(prio), '-inf', now - stall, 'LIMIT', 0, limit)) do
    recover(m, 'unit_stalled', 'it made no progress for ' .. (stall / 1000) .. ' s.', 'leased')
    redis.call('ZREM', progress_key(prio), m)
  end
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', waiting_key(), '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', waiting_key(), m)
  recover(m, '', '', 'waiting')
end
return made_ready
"""
)

# ARGV: prefix, finished_at, error JSON. JobStore.cancel with the units: queued | running -> canceled.
_CANCEL = (
    _LIB
    + """
P = ARGV[1]
local job = ARGV[2]
local status, tenant, prio, created = job_info(job)
if not status then return {'missing', ''} end
if status ~= 'queued' and status ~= 'running' then return {'refused', status} end
local jk = jkey(job)
redis.call('HSET', jk, 'status', 'canceled', 'finished_at', ARGV[3], 'error', ARGV[4])
move_status_index(jk, job, status, 'canceled')  -- status index
redis.call('ZREM', P .. ':queued', job)
stop_units(job, tenant, prio, created)
return {'ok', status}
"""
)

# ARGV: prefix, job. Every trace of the job's units (JobStore.delete: the record goes next).
_FORGET = (
    _LIB
    + """
P = ARGV[1]
local job = ARGV[2]
local status, tenant, prio, created = job_info(job)
if tenant and created then stop_units(job, tenant, prio, created) end
for _, p in ipairs(PRIOS) do
  for u = -2, tonumber(redis.call('HGET', ukey(job), 'n') or '0') - 1 do
    redis.call('ZREM', leases_key(p), lease_member(job, u))
    redis.call('ZREM', progress_key(p), lease_member(job, u))
  end
end
redis.call('DEL', ukey(job), P .. ':job:' .. job .. ':stop-seen')
return 1
"""
)

_READY_COUNTS = (
    _LIB
    + """
P = ARGV[1]
local out = {}
for _, p in ipairs(PRIOS) do
  local total = 0
  for _, k in ipairs(KINDS) do
    for _, t in ipairs(redis.call('ZRANGE', tenants_key(p, k), 0, -1)) do
      total = total + redis.call('ZCARD', ready_key(p, k, t))
    end
  end
  table.insert(out, total)
end
return out
"""
)

_FINISH_CODES: dict[int, Literal["done", "assemble", "stopped"]] = {0: "stopped", 1: "done", 2: "assemble"}


class UnitStore:
    """The units of every job and their leases (see the module docstring)."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int, jobs: JobStore) -> None:
        self._redis: Any = client
        self._prefix = prefix
        self.retention = retention_seconds
        self._jobs = jobs
        register = self._redis.register_script
        self._add_plan = register(_ADD_PLAN)
        self._take = register(_TAKE)
        self._renew = register(_RENEW)
        self._register_plan = register(_REGISTER_PLAN)
        self._progress = register(_PROGRESS)
        self._checkpoint = register(_CHECKPOINT)
        self._finish_unit = register(_FINISH_UNIT)
        self._hand_back = register(_HAND_BACK)
        self._end_job = register(_END_JOB)
        self._sweep = register(_SWEEP)
        self._cancel = register(_CANCEL)
        self._forget = register(_FORGET)
        self._ready_counts = register(_READY_COUNTS)
        jobs.attach_units(self)

    def _units(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}:units"

    def _head(self, claim: UnitClaim) -> list[Any]:
        return [self._prefix, claim.job_id, claim.unit, claim.token]

    # --- called by JobStore -------------------------------------------------------------------------
    def stage_plan(self, pipe: Any, job_id: str) -> None:
        """Queue the new job's plan unit inside `pipe`, JobStore.create's transaction (after its record)."""
        self._add_plan(args=[self._prefix, job_id], client=pipe)

    def cancel(self, job_id: str, *, error: dict[str, str]) -> tuple[str, str]:
        """queued | running -> canceled, and none of its units stays ready or leased (one script)."""
        outcome, old = self._cancel(args=[self._prefix, job_id, repr(utcnow()), json.dumps(error)])
        return outcome.decode(), old.decode()

    def forget_job(self, job_id: str) -> None:
        """Remove every unit key of the job (JobStore.delete; expired jobs' keys expire with them)."""
        self._forget(args=[self._prefix, job_id])

    # --- taking and holding -----------------------------------------------------------------------
    def take(
        self, *, lease_seconds: float, max_attempts: int, kinds: frozenset[UnitKind] = ALL_KINDS
    ) -> UnitClaim | Exhausted | None:
        """Atomically pick the best ready unit and lease it to a new token.

        Order: priority class (interactive > normal > batch); within a class the tenant with the fewest
        units leased right now (ties: the tenant served longest ago); within a tenant its oldest job
        first, plan before speak before assemble, speak units in index order. Units of jobs no longer
        running are dropped on the way. The first claim moves a queued job to running. A unit claimed
        `max_attempts` times already fails its job with the code it was last given back with and is
        returned as `Exhausted`. None: nothing ready."""
        token = lease.new_token()
        order = " ".join(kind.value for kind in UnitKind if kind in kinds)
        args = [self._prefix, max_attempts, int(lease_seconds * 1000), token, order, repr(utcnow()), self.retention]
        reply = self._take(args=args)
        outcome = reply[0].decode()
        if outcome == "none":
            return None
        if outcome == "exhausted":
            return Exhausted(job_id=reply[1].decode(), tenant=reply[2].decode(), error=json.loads(reply[3]))
        unit = int(reply[2])
        return UnitClaim(
            job_id=reply[1].decode(),
            unit=unit,
            kind=kind_of(unit),
            token=token,
            attempts=int(reply[3]),
            tenant=reply[4].decode(),
            priority=JobPriority(reply[5].decode()),
        )

    def renew(self, claim: UnitClaim, lease_seconds: float) -> bool:
        """Extend the lease; False when it is gone (swept, handed back, or the job ended)."""
        return bool(self._renew(args=[*self._head(claim), int(lease_seconds * 1000)]))

    # --- plan units ---------------------------------------------------------------------------------
    def register_plan(
        self, claim: UnitClaim, *, plan: dict[str, Any], units: list[str], chunks_total: int, engine: str
    ) -> int | None:
        """Store the plan and the speak units (`units[i]`: the JSON of unit i's chunks), make them ready
        and end the plan unit. Returns how many units are ready now (send that many tokens; a repeat
        returns the same count again, extra tokens are harmless); None when the job stopped running.
        A plan of no speak units makes the assemble unit ready (counted as 1)."""
        if claim.kind != UnitKind.PLAN:
            raise ValueError("register_plan takes the claim of a plan unit")
        reply = _checked(self._register_plan(args=[*self._head(claim), json.dumps(plan), chunks_total, engine, *units]))
        return None if reply == -2 else reply

    def plan(self, job_id: str) -> dict[str, Any] | None:
        raw = self._redis.hget(self._units(job_id), "plan")
        return json.loads(raw) if raw else None

    def unit_chunks(self, job_id: str, unit: int) -> str | None:
        """The JSON `register_plan` stored for speak unit `unit`."""
        raw = self._redis.hget(self._units(job_id), f"{unit}:c")
        return raw.decode() if raw is not None else None

    # --- speak units --------------------------------------------------------------------------------
    def progress(self, claim: UnitClaim, *, seconds: float, synth_seconds: float) -> bool:
        """One chunk generated, not yet durable: it counts in the job's progress until the unit is given
        back or swept before checkpointing it. False: the job stopped running (stop)."""
        return bool(_checked(self._progress(args=[*self._head(claim), repr(seconds), repr(synth_seconds)])))

    def checkpoint(self, claim: UnitClaim, part_key: str, chunks: list[DurableChunk]) -> bool:
        """The part object `part_key` is in storage and holds `chunks`: record them durably, so a new
        claim of the unit resumes after them. False: the job stopped running."""
        args: list[Any] = self._head(claim)
        for chunk in chunks:
            record: dict[str, Any] = {
                "seconds": chunk.seconds,
                "carry": base64.b64encode(chunk.carry).decode() if chunk.carry else None,
                "run": claim.attempts,
                "part": part_key,
                "offset": chunk.offset,
                "samples": chunk.samples,
            }
            if chunk.quality is not None:
                record["quality"] = chunk.quality
            if chunk.error is not None:
                record["error"] = chunk.error
            args += [chunk.key, json.dumps(record), repr(chunk.seconds), repr(chunk.synth_seconds)]
        return bool(_checked(self._checkpoint(args=args)))

    def finish_unit(self, claim: UnitClaim) -> Literal["done", "assemble", "stopped"]:
        """A speak unit finished, all its chunks checkpointed. "assemble" for exactly one caller, the
        job's last speak unit (its assemble unit is ready now: send one token); "stopped" when the job
        no longer runs."""
        if claim.kind != UnitKind.SPEAK:
            raise ValueError("finish_unit takes the claim of a speak unit")
        return _FINISH_CODES[_checked(self._finish_unit(args=self._head(claim)))]

    def hand_back(self, claim: UnitClaim, *, reason: str, code: str, delay_seconds: float = 0.0) -> bool:
        """Give the unit back unfinished (at once, or ready after `delay_seconds`). Chunks reported by
        `progress` but not checkpointed no longer count. `code` and `reason` are what the job fails with
        if the unit then runs out of attempts. False: the job stopped running."""
        return bool(_checked(self._hand_back(args=[*self._head(claim), code, reason, int(delay_seconds * 1000)])))

    # --- ending the job -----------------------------------------------------------------------------
    def finish_job(self, claim: UnitClaim, *, result: dict[str, Any], timings: dict[str, Any]) -> bool:
        """The assemble unit's end: the job succeeded with `result`. False: it stopped running."""
        if claim.kind != UnitKind.ASSEMBLE:
            raise ValueError("finish_job takes the claim of the assemble unit")
        fields = ["result", json.dumps(result), "timings", json.dumps(timings), "finished_at", repr(utcnow())]
        return self._end(claim, JobStatus.SUCCEEDED, fields)

    def fail_job(self, claim: UnitClaim, *, error: dict[str, str]) -> bool:
        """Any unit of the job fails it; the other units' holders stop at their next write."""
        return self._end(claim, JobStatus.FAILED, ["error", json.dumps(error), "finished_at", repr(utcnow())])

    def _end(self, claim: UnitClaim, status: JobStatus, fields: list[str]) -> bool:
        return bool(_checked(self._end_job(args=[*self._head(claim), status.value, self.retention, *fields])))

    def first_to_stop(self, job_id: str) -> bool:
        """True for exactly one caller per job: of the units that find their job stopped (a cancel: the
        API's transition), the one that counts it."""
        key = f"{self._prefix}:job:{job_id}:stop-seen"
        return bool(self._redis.set(key, 1, nx=True, ex=self.retention))

    # --- recovery -----------------------------------------------------------------------------------
    def sweep(self, *, stall_seconds: float, now: float | None = None, limit: int = 1000) -> int:
        """Leased units whose lease ran out or (speak units) that made no progress for `stall_seconds`,
        and handed-back units whose delay is over, become ready again; a stale holder's next write raises
        `LeaseLost`. `now`: epoch seconds (default: the Redis server's clock). Returns how many units
        became ready (send that many tokens)."""
        at = "" if now is None else str(int(now * 1000))
        return int(self._sweep(args=[self._prefix, at, int(stall_seconds * 1000), limit]))

    # --- reading ------------------------------------------------------------------------------------
    def ready_counts(self) -> dict[JobPriority, int]:
        """Ready units per priority (queue depth)."""
        counts = self._ready_counts(args=[self._prefix])
        return {prio: int(count) for prio, count in zip(PRIORITY_ORDER, counts, strict=True)}

    def leased_counts(self) -> dict[JobPriority, int]:
        pipe = self._redis.pipeline(transaction=False)
        for prio in PRIORITY_ORDER:
            pipe.zcard(f"{self._prefix}:units:leases:{prio.value}")
        return {prio: int(count) for prio, count in zip(PRIORITY_ORDER, pipe.execute(), strict=True)}

    def units_of(self, job_id: str) -> list[UnitState]:
        """Every unit the job has so far: plan, speak units in order, assemble (once it exists)."""
        raw = {key.decode(): value.decode() for key, value in self._redis.hgetall(self._units(job_id)).items()}
        total = int(raw.get("n", 0))
        out = []
        for unit in (PLAN_UNIT, *range(total), ASSEMBLE_UNIT):
            state = raw.get(f"{unit}:s")
            if state is not None:
                holder = lease.Holder.parse(raw.get(f"{unit}:t", ""))
                out.append(
                    UnitState(
                        kind_of(unit),
                        unit,
                        state,
                        int(raw.get(f"{unit}:a", 0)),
                        holder=f"{holder.host}:{holder.pid}" if holder else "",
                        live=int(raw.get(f"{unit}:n", 0)),
                    )
                )
        return out


def _checked(reply: Any) -> int:
    if int(reply) == lease.LOST:
        raise lease.LeaseLost
    return int(reply)
