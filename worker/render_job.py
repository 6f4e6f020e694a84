"""A finished job's files from its plan and checkpoint parts: stitch, loudness, encode, upload.

This is the CPU-heavy end of a job. It runs in a spawned process of the assembly pool
(`NARRATE_ASSEMBLY_PROCESSES`), beside the engine's threads, so the GPU's batch stays full while an
earlier job is encoded; the module imports nothing of the engines (no torch in the child). Its input
and output are plain data: settings, the job's spec and plan, and where each chunk lies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.audio.formats import file_rate
from shared.jobs import JobCreate, LineFit, StoredFile, StoredResult
from shared.settings import Settings
from shared.storage import Storage, storage_from_settings
from shared.storage_keys import manifest_key, quality_report_key, run_prefix
from worker import assembly, checkpoints, timing
from worker.alignment import Aligner
from worker.phases import Phases
from worker.planning import Plan, PlannedChunk
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
    sample_rate: int
    default_voice: str


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
    parts = _Parts(storage, task.where, plan)
    prefix = run_prefix(task.tenant, task.job_id, task.attempt)
    input_ids = spec.input_ids()
    mastering = assembly.Mastering.from_settings(task.settings)
    tags = spec.file_tags()
    aligner = _aligner() if task.settings.alignment else None
    results: dict[str, StoredFile] = {}
    fits: dict[str, LineFit] = {}
    lipsync: dict[str, dict[str, Any]] = {}
    file_result: StoredFile | None = None
    placed: list[PlacedFile] = []
    for output in assembly.outputs_for(task.job_id, spec):
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
            aligner=aligner,
        )
        fits.update(rendered.fits)
        uploaded = assembly.upload_file(storage, prefix, output, rendered, spec.format, tags, phases)
        placed.append(PlacedFile(uploaded.filename, rendered.chunk_spans))
        if output.per_input:
            results[input_ids[output.inputs[0]]] = uploaded
            lipsync[input_ids[output.inputs[0]]] = timing.lipsync(rendered.timing, output.inputs[0])
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
            fits,
            task.plan.get("spoken"),
            lipsync,
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
        file=file_result, inputs=results, manifest=manifest, fits=fits, quality=summary, quality_report=report
    ).model_dump(mode="json")
    return result, phases.rounded()
