"""A job's assemble unit: its files from every speak unit's parts, then the job's final transition.

Ready exactly once (the last speak unit's `finish_unit`), yet safe to run twice (a holder fenced out
mid-upload): each claim uploads under its own `run_prefix`, `finish_job` is fenced by the claim, and
the winner deletes the other claims' files and every checkpoint. Stitching, loudness, encoding and
upload run in the assembly process pool (`worker.render_job`), never on the engine's threads.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from shared import metrics
from shared.jobs import JobCreate, StoredResult
from shared.revisions import RevisionRecord, load_record
from shared.storage import StorageError
from shared.storage_keys import checkpoint_prefix, run_prefix
from shared.store import DoneChunk
from shared.text.rate import SpeechRate
from shared.units import UnitClaim
from worker import outcomes
from worker.outcomes import Stopped
from worker.planning import PLAN_LANGUAGE, Plan
from worker.render_job import RenderTask, render
from worker.render_record import engine_identity, location, original_record, where_of
from worker.runtime import Runtime

log = logging.getLogger(__name__)

_pool: Executor | None = None
_pool_environ: dict[str, str] = {}
_pool_lock = threading.Lock()


def assembly_pool(processes: int) -> Executor | None:
    """The process's assembly pool (spawned children: no engine, no torch, no CUDA context); None when
    `processes` is 0 (assembly then runs on the unit's own thread). The children read storage
    credentials from the environment they were started with, so a process whose environment changed
    since (tests do that) gets a new pool."""
    global _pool, _pool_environ
    if processes <= 0:
        return None
    with _pool_lock:
        if _pool is not None and _pool_environ != os.environ:
            _pool.shutdown(wait=False)
            _pool = None
        if _pool is None:
            _pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            _pool_environ = dict(os.environ)
        return _pool


def _drop_pool(broken: Executor | None) -> None:
    """A child of the pool died (out of memory, killed): the next assembly gets a new pool."""
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None


def run_assemble(claim: UnitClaim, rt: Runtime) -> None:
    """Render, upload and finish the job. Raises `Stopped` when it stopped running, `LeaseLost` when this
    claim was fenced out, storage errors as they come."""
    job_id = claim.job_id
    started = time.time()
    raw_plan = rt.units.plan(job_id)
    spec = rt.jobs.spec(job_id)
    if raw_plan is None or spec is None:
        raise Stopped
    done = rt.jobs.done_chunks(job_id)
    plan = Plan.from_dict(raw_plan)
    raw_revision = rt.jobs.revision(job_id)
    revision = RevisionRecord.model_validate(raw_revision) if raw_revision else None
    if revision is None:
        missing = [p.key for p in plan.all() if p.key not in done]
        where = {key: (chunk.part, chunk.offset, chunk.samples) for key, chunk in done.items() if not chunk.error}
        identity = engine_identity(rt.settings, rt.engine.name)
        record = original_record(identity, spec.model_dump(mode="json"), raw_plan, done)
        previews = None
    else:
        missing = [key for take in raw_plan.get("takes", []) for key in take["keys"].values() if key not in done]
        spec = JobCreate.model_validate(raw_plan["spec"])
        where, record, previews = _pickup(rt, revision, plan, raw_plan, done)
    if missing:  # every speak unit finished, so this is a store inconsistency, not a race
        raise RuntimeError(f"{len(missing)} chunks have no checkpoint (first: {missing[0]})")
    task = RenderTask(
        settings=rt.settings,
        job_id=job_id,
        tenant=claim.tenant,
        attempt=claim.attempts,
        spec=spec.model_dump_json(),
        plan=raw_plan,
        where=where,
        quality={key: chunk.quality for key, chunk in done.items()},
        errors={key: chunk.error for key, chunk in done.items() if chunk.error},
        sample_rate=rt.engine.sample_rate,
        default_voice=rt.engine.default_voice(),
        record=record,
        previews=previews,
        name=revision.parent if revision else None,
        gains=record.get("gains") if revision else None,
    )
    pool = assembly_pool(rt.settings.assembly_processes)
    try:
        result, timings = pool.submit(render, task).result() if pool is not None else render(task)
    except BrokenProcessPool:
        _drop_pool(pool)
        raise
    generation = max(0.0, started - float(raw_plan.get("planned_at", started)))  # wall time, all units
    timings = {**raw_plan.get("timings", {}), "generation": round(generation, 4), **timings}
    _learn_speech_rate(rt, plan, {key: chunk.seconds for key, chunk in done.items() if not chunk.error})
    if not rt.units.finish_job(claim, result=result, timings=timings):
        raise Stopped
    rt.services.usage.record_lines_reused(claim.tenant, len(result.get("reused", [])))  # once: finish_job is fenced
    # The parts the render record names stay (until retention ends): a pickup stitches between them.
    _drop_unreferenced_parts(rt, job_id, record)
    if revision is not None and previews is None:
        rt.jobs.publish_version(
            revision.parent,
            revision=revision.pick_of or job_id,
            take=revision.take or 1,
            result=StoredResult.model_validate(result),
            warnings=raw_plan.get("warnings", []),
        )
    for earlier in range(1, claim.attempts):  # files of claims that died or were fenced out mid-upload
        outcomes.clean_up(rt, run_prefix(claim.tenant, job_id, earlier))
    view = rt.jobs.view(job_id)
    if view and view.started_at:
        metrics.JOB_DURATION.observe(max(0.0, time.time() - view.started_at.timestamp()))
    log.info("job %s assembled in %.1f s", job_id, time.time() - started)
    outcomes.succeeded(rt, job_id)


def _drop_unreferenced_parts(rt: Runtime, job_id: str, record: dict[str, Any]) -> None:
    """Delete this job's checkpoint parts no chunk of its render record lies in (a dead holder's)."""
    named = [record["chunks"], *(take["chunks"] for take in record.get("takes", []))]
    kept = {item["part"] for chunks in named for item in chunks.values()}
    try:
        for key in rt.storage.list_keys(checkpoint_prefix(job_id)):
            if key not in kept:
                rt.storage.delete(key)
    except StorageError as exc:  # left to the retention sweep
        log.warning("could not delete job %s's unreferenced parts (%s)", job_id, exc)


def _pickup(
    rt: Runtime, revision: RevisionRecord, plan: Plan, raw_plan: dict[str, Any], done: dict[str, DoneChunk]
) -> tuple[dict[str, tuple[str, int, int]], dict[str, Any], list[tuple[int, list[str]]] | None]:
    """A pickup's (where each chunk lies, render record, previews): the version with its one take (or the
    picked take), else each take's span alone."""
    covered: list[str] = raw_plan.get("covered", [])
    if revision.pick_of is not None:
        source_view = rt.jobs.view(revision.pick_of)
        render = source_view.stored_result.render if source_view else None
        if render is None:
            raise RuntimeError(f"revision {revision.pick_of} has no render record")
        source = load_record(rt.storage, render.key)
        chosen = next(take for take in source["takes"] if take["take"] == revision.take)
        chunks = {**source["chunks"], **chosen["chunks"]}
        record = {**source, "chunks": chunks, "takes": [chosen]}
        return where_of(chunks), record, None
    base = load_record(rt.storage, revision.base_render)
    fixed = {p.key: base["chunks"][p.key] for p in plan.all() if p.key not in covered}
    by_key = {p.key: p for p in plan.all()}
    takes = []
    for take in raw_plan.get("takes", []):
        drawn = {}
        for logical, key in take["keys"].items():
            request = by_key[logical].request
            request = replace(
                request, seed_key=logical.split("~", 1)[0], sampling=replace(request.sampling, seed=take["seed"])
            )
            drawn[logical] = location(done[key], request.seed())
        takes.append({"take": take["take"], "seed": take["seed"], "chunks": drawn})
    record = {
        "format": 1, "engine": base["engine"], "spec": raw_plan["spec"], "plan": {"inputs": raw_plan["inputs"]},
        "chunks": fixed, "takes": takes, "covered": covered, "gains": base.get("gains", {}),
    }  # fmt: skip
    if len(takes) == 1:
        record["chunks"] = {**fixed, **takes[0]["chunks"]}
        return where_of(record["chunks"]), record, None
    where = {key: (c.part, c.offset, c.samples) for key, c in done.items()}
    previews = [(take["take"], [take["keys"][k] for k in covered]) for take in raw_plan["takes"]]
    return where, record, previews


def _learn_speech_rate(rt: Runtime, plan: Plan, seconds: dict[str, Any]) -> None:
    """Fold this job's measured chunk durations into the engine's speech-rate estimate."""
    rate = SpeechRate.from_dict(
        rt.jobs.speech_rate(rt.engine.name, PLAN_LANGUAGE) or {"prior": rt.settings.chars_per_second}
    )
    for planned in plan.all():
        if planned.key in seconds:
            rate.update(len(planned.chunk.text), seconds[planned.key])
    rt.jobs.save_speech_rate(rt.engine.name, PLAN_LANGUAGE, rate.to_dict())
