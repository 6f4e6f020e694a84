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
from shared.jobs import JobCreate, JobError, LineFit, StoredFile, StoredObject, StoredResult
from shared.revisions import RENDER_RECORD, save_record
from shared.settings import Settings
from shared.storage import Storage, StorageKeyMissing, storage_from_settings
from shared.storage_keys import manifest_csv_key, manifest_key, quality_report_key, run_prefix
from shared.text.chunking import Boundary
from worker import assembly, checkpoints, line_cache, timing
from worker.alignment import Aligner
from worker.phases import Phases
from worker.planning import Plan, PlannedChunk, pause_after
from worker.quality_report import PlacedFile, build_report, upload_report


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
    quality: dict[str, dict[str, Any] | None]
    """Chunk key -> the kept draw's quality check (`DoneChunk.quality`)."""
    errors: dict[str, dict[str, str]]
    """Chunk key -> `{code, message}` of a line's chunk the engine could not synthesise (`DoneChunk.error`)."""
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
        # A line's chunk that failed has no audio and no part (`RenderTask.errors`).
        self._uses = Counter(where[planned.key][0] for planned in plan.all() if planned.key in where)
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


_ALIGNER: list[Aligner] = []


def _aligner() -> Aligner:
    """The process's aligner: its decoder (model and dictionary) is loaded once per pool process."""
    if not _ALIGNER:
        _ALIGNER.append(Aligner())
    return _ALIGNER[0]


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
    """Every file of the job; (its stored result, each chapter's level gain)."""
    parts = _Parts(storage, task.where, plan)
    input_ids = spec.input_ids()
    mastering = assembly.Mastering.from_settings(task.settings)
    tags = spec.file_tags()
    aligner = _aligner() if task.settings.alignment else None
    results: dict[str, StoredFile] = {}
    fits: dict[str, LineFit] = {}
    lipsync: dict[str, dict[str, Any]] = {}
    placed: list[PlacedFile] = []
    failed: dict[str, JobError] = {}
    reused: list[str] = []
    file_result: StoredFile | None = None
    gains: dict[str, float] = {}
    outputs = assembly.outputs_for(
        task.name or task.job_id, spec, default_voice=task.default_voice, spoken=task.plan.get("spoken")
    )
    for output in outputs:
        index = output.inputs[0]
        line = output.per_input and (index in plan.digests or index in plan.failed)
        if line and index in plan.failed:
            failed[input_ids[index]] = JobError(**plan.failed[index])
            continue
        error = next((task.errors[p.key] for p in plan.inputs[index] if p.key in task.errors), None) if line else None
        if error is not None:  # the engine failed on a chunk of this line alone
            failed[input_ids[index]] = JobError(**error)
            continue
        fmt = output.format or spec.format
        if line and index in plan.reused:
            try:
                with phases.timed("upload"):
                    results[input_ids[index]] = line_cache.reuse(
                        storage, task.tenant, plan.digests[index], fmt.extension,
                        prefix=prefix, name=output.name, input_id=input_ids[index],
                    )  # fmt: skip
                reused.append(input_ids[index])
            except StorageKeyMissing:
                failed[input_ids[index]] = JobError(
                    code="line_cache_expired",
                    message="The cached file of this unchanged line expired while the job ran; submit it again.",
                )
            continue
        rendered = assembly.build_file(
            output,
            plan,
            parts.load,
            sample_rate=task.sample_rate,
            # A book's chapter files may have a format of their own (and so a rate of their own).
            file_rate=file_rate(fmt, spec.sample_rate or task.sample_rate),
            mastering=mastering,
            input_ids=input_ids,
            phases=phases,
            aligner=aligner,
            gains=task.gains,
        )
        fits.update(rendered.fits)
        gains.update(rendered.gains)
        uploaded = assembly.upload_file(storage, prefix, output, rendered, spec.format, tags, phases)
        placed.append(PlacedFile(uploaded.filename, rendered.chunk_spans))
        if not output.per_input:
            file_result = uploaded
            continue
        results[input_ids[index]] = uploaded
        lipsync[input_ids[index]] = timing.lipsync(rendered.timing, index)
        if line:
            span = (rendered.spans[0].start, rendered.spans[0].end) if rendered.spans else None
            with phases.timed("upload"):
                line_cache.remember(storage, task.tenant, plan.digests[index], uploaded, rendered.cues, span)
    manifest = manifest_csv = None
    if results or failed:
        manifest, manifest_csv = assembly.upload_manifest(
            storage,
            (
                manifest_key(task.tenant, task.job_id, task.attempt),
                manifest_csv_key(task.tenant, task.job_id, task.attempt),
            ),
            task.job_id,
            spec,
            results,
            task.default_voice,
            fits,
            task.plan.get("spoken"),
            lipsync,
            failed=failed,
            reused=set(reused),
        )
    settings = task.settings
    summary, rows = build_report(
        plan, task.quality, placed, input_ids, asr=str(settings.qc_asr), max_wer=settings.qc_max_wer
    )
    with phases.timed("upload"):
        report = upload_report(
            storage, quality_report_key(task.tenant, task.job_id, task.attempt), task.job_id, summary, rows
        )
    result = StoredResult(
        file=file_result,
        inputs=results,
        manifest=manifest,
        manifest_csv=manifest_csv,
        failed=failed,
        reused=reused,
        fits=fits,
        quality=summary,
        quality_report=report,
    ).model_dump(mode="json")
    return result, gains
