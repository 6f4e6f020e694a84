"""A finished job's files from its plan and checkpoint parts: stitch, loudness, encode, upload.

This is the CPU-heavy end of a job. It runs in a spawned process of the assembly pool
(`NARRATE_ASSEMBLY_PROCESSES`), beside the engine's threads, so the GPU's batch stays full while an
earlier job is encoded; the module imports nothing of the engines (no torch in the child). Its input
and output are plain data: settings, the job's spec and plan, and where each chunk lies.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.audio.encode import encode
from shared.audio.formats import file_rate
from shared.audio.stitch import stitch
from shared.jobs import JobCreate, StoredFile, StoredObject, StoredResult
from shared.revisions import RENDER_RECORD, save_record
from shared.settings import Settings
from shared.storage import Storage, storage_from_settings
from shared.storage_keys import manifest_key, run_prefix
from shared.text.chunking import Boundary
from worker import assembly, checkpoints
from worker.phases import Phases
from worker.planning import Plan, PlannedChunk, pause_after


@dataclass(frozen=True)
class RenderTask:
    settings: Settings
    job_id: str
    tenant: str
    attempt: int
    """The assemble unit's claim count: its files go under `run_prefix(tenant, job, attempt)`."""
    spec: str
    """The job's `JobCreate` as JSON."""
    plan: dict[str, Any]
    where: dict[str, tuple[str, int, int]]
    """Chunk key -> (part object key, first sample, samples)."""
    sample_rate: int
    default_voice: str
    record: dict[str, Any] | None = None
    """The render record uploaded beside the files (`shared.revisions`): a pickup starts from it."""
    name: str | None = None
    """Stem of the job's file (default: the job id); a pickup's versions keep its parent's."""
    gains: dict[str, float] | None = None
    """Chapter level gains to hold (a pickup's: its base render's), so only the span changes."""
    previews: list[tuple[int, list[str]]] | None = None
    """A pickup of several takes: (take, its chunk keys in reading order) each rendered alone as the
    span's audio, in place of the job's files."""


class _Parts:
    """Part objects read once each, and dropped as soon as their last chunk has been sliced out."""

    def __init__(self, storage: Storage, where: dict[str, tuple[str, int, int]], plan: Plan) -> None:
        self._storage = storage
        self._where = where
        self._uses = Counter(where[planned.key][0] for planned in plan.all())
        self._loaded: dict[str, np.ndarray] = {}

    def load(self, planned: PlannedChunk) -> np.ndarray:
        part, offset, samples = self._where[planned.key]
        if part not in self._loaded:
            self._loaded[part] = checkpoints.load_part(self._storage, part)
        audio = self._loaded[part][offset : offset + samples].copy()
        self._uses[part] -= 1
        if self._uses[part] <= 0:
            del self._loaded[part]
        return audio


def render(task: RenderTask) -> tuple[dict[str, Any], dict[str, float]]:
    """Build, encode and upload every file of the job; (the job's stored result, phase timings)."""
    storage = storage_from_settings(task.settings)
    spec = JobCreate.model_validate_json(task.spec)
    plan = Plan.from_dict(task.plan)
    phases = Phases()
    prefix = run_prefix(task.tenant, task.job_id, task.attempt)
    result: dict[str, Any]
    if task.previews is not None:
        result = {"takes": [_preview(task, storage, spec, plan, prefix, take, keys) for take, keys in task.previews]}
    else:
        result, gains = _files(task, storage, spec, plan, prefix, phases)
        if task.record is not None:
            task.record["gains"] = gains
    if task.record is not None:
        size, digest = save_record(storage, prefix + RENDER_RECORD, task.record)
        result["render"] = StoredObject(key=prefix + RENDER_RECORD, bytes=size, sha256=digest).model_dump(mode="json")
    return result, phases.rounded()


def _preview(
    task: RenderTask, storage: Storage, spec: JobCreate, plan: Plan, prefix: str, take: int, keys: list[str]
) -> dict[str, Any]:
    """One take's span alone: its chunks with the pauses between them, in the job's format."""
    boundaries = {p.key: p.chunk for p in plan.all()}
    pauses = assembly.Mastering.from_settings(task.settings).pauses_for(spec)
    loaded: dict[str, np.ndarray] = {}
    segments = []
    for key in keys:
        part, offset, samples = task.where[key]
        if part not in loaded:
            loaded[part] = checkpoints.load_part(storage, part)
        segments.append(loaded[part][offset : offset + samples])
    logical = [key.rsplit("~t", 1)[0] for key in keys]
    gaps = [_pause(boundaries[k].pause_ms, boundaries[k].boundary, pauses) for k in logical[:-1]]
    audio = stitch(segments, gaps, task.sample_rate).audio
    data = encode(audio, task.sample_rate, spec.format)
    filename = f"take-{take}.{spec.format.extension}"
    storage.put_bytes(prefix + filename, data, spec.format.content_type)
    seconds = round(len(audio) / task.sample_rate, 3)
    stored = StoredFile(
        key=prefix + filename, filename=filename, format=spec.format, duration_seconds=seconds,
        bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    return stored.model_dump(mode="json")


def _pause(own: int | None, boundary: Boundary, pauses: dict[str, int]) -> int:
    return own if own is not None else pause_after(boundary, pauses)


def _files(
    task: RenderTask, storage: Storage, spec: JobCreate, plan: Plan, prefix: str, phases: Phases
) -> tuple[dict[str, Any], dict[str, float]]:
    parts = _Parts(storage, task.where, plan)
    input_ids = spec.input_ids()
    mastering = assembly.Mastering.from_settings(task.settings)
    tags = spec.file_tags()
    results: dict[str, StoredFile] = {}
    file_result: StoredFile | None = None
    gains: dict[str, float] = {}
    for output in assembly.outputs_for(task.name or task.job_id, spec):
        rendered = assembly.build_file(
            output,
            plan,
            parts.load,
            sample_rate=task.sample_rate,
            # A book's chapter files may have a format of their own (and so a rate of their own).
            file_rate=file_rate(output.format or spec.format, spec.sample_rate or task.sample_rate),
            mastering=mastering,
            input_ids=input_ids,
            phases=phases,
            gains=task.gains,
        )
        gains.update(rendered.gains)
        uploaded = assembly.upload_file(storage, prefix, output, rendered, spec.format, tags, phases)
        if output.per_input:
            results[input_ids[output.inputs[0]]] = uploaded
        else:
            file_result = uploaded
    manifest = None
    if results:
        manifest = assembly.upload_manifest(
            storage,
            manifest_key(task.tenant, task.job_id, task.attempt),
            task.job_id,
            spec,
            results,
            task.default_voice,
        )
    return StoredResult(file=file_result, inputs=results, manifest=manifest).model_dump(mode="json"), gains
