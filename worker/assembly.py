"""Stitch a job's chunks into files, normalise, encode and upload them with subtitles."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.audio.encode import content_type, encode, extension
from shared.audio.loudness import normalize_loudness
from shared.audio.resample import resample
from shared.audio.stitch import stitch
from shared.audio.subtitles import Cue, to_srt, to_timing_json, to_vtt
from shared.jobs import JobCreate
from shared.settings import Settings
from shared.storage import Storage
from worker.phases import Phases
from worker.planning import Plan, PlannedChunk, pause_after


@dataclass(frozen=True)
class OutputFile:
    name: str
    """File name stem: the job id for a concatenated result, else the input id."""
    inputs: list[int]
    """Indices of the inputs it holds, in order."""
    per_input: bool = False
    """One of a batch of separate files (reported per input, listed in the manifest)."""


def pauses_from(settings: Settings) -> dict[str, int]:
    return {
        "clause": settings.pause_clause_ms,
        "sentence": settings.pause_sentence_ms,
        "paragraph": settings.pause_paragraph_ms,
        "end": settings.pause_paragraph_ms,
        "chapter": settings.pause_chapter_ms,
    }


def outputs_for(job_id: str, spec: JobCreate) -> list[OutputFile]:
    if spec.concatenate or len(spec.inputs) == 1:
        return [OutputFile(job_id, list(range(len(spec.inputs))))]
    return [OutputFile(input_id, [index], per_input=True) for index, input_id in enumerate(spec.input_ids())]


def result_prefix(tenant: str, job_id: str) -> str:
    return f"results/{tenant}/{job_id}/"


def build_file(
    output: OutputFile,
    plan: Plan,
    load: Callable[[PlannedChunk], np.ndarray],
    *,
    sample_rate: int,
    spec: JobCreate,
    settings: Settings,
    input_ids: list[str],
    phases: Phases,
) -> tuple[np.ndarray, int, list[Cue], list[tuple[float, str]], list[dict]]:
    """Stitch the output's chunks; returns audio, its rate, cues, chapter marks and input spans."""
    pauses = pauses_from(settings)
    segments: list[np.ndarray] = []
    gaps: list[int] = []
    owners: list[PlannedChunk] = []
    with phases.timed("stitching"):
        for position, input_index in enumerate(output.inputs):
            chunks = plan.inputs[input_index]
            for index, planned in enumerate(chunks):
                segments.append(load(planned))
                owners.append(planned)
                if index < len(chunks) - 1:
                    gaps.append(pause_after(planned.chunk.boundary, pauses))
                elif position < len(output.inputs) - 1:
                    gaps.append(pauses["chapter"])
        if not segments:
            return np.zeros(int(0.5 * sample_rate), np.float32), sample_rate, [], [], []
        stitched = stitch(segments, gaps, sample_rate)
        del segments
    with phases.timed("loudness"):
        audio = normalize_loudness(
            stitched.audio, sample_rate, target_lufs=settings.loudness_target_lufs, peak_dbfs=settings.peak_dbfs
        )
        out_rate = spec.sample_rate or sample_rate
        if out_rate != sample_rate:
            audio = resample(audio, sample_rate, out_rate)
    cues = [Cue(start, end, planned.chunk.text) for planned, (start, end) in zip(owners, stitched.spans, strict=True)]
    chapters: list[tuple[float, str]] = []
    spans: list[dict] = []
    for input_index in output.inputs:
        own = [span for planned, span in zip(owners, stitched.spans, strict=True) if planned.input_index == input_index]
        if own:
            chapters.append((own[0][0], input_ids[input_index]))
            spans.append({"id": input_ids[input_index], "start": own[0][0], "end": own[-1][1]})
    return audio, out_rate, cues, chapters, spans


def upload_file(
    storage: Storage,
    prefix: str,
    output: OutputFile,
    audio: np.ndarray,
    rate: int,
    fmt: str,
    cues: list[Cue],
    chapters: list[tuple[float, str]],
    spans: list[dict],
    metadata: dict[str, str],
    phases: Phases,
) -> dict:
    """Encode and upload one file and its subtitles; returns its FileResult as a dict."""
    with phases.timed("encoding"):
        data = encode(audio, rate, fmt, chapters=chapters if len(chapters) > 1 else None, metadata=metadata)
        documents = {
            "srt": (to_srt(cues), "application/x-subrip"),
            "vtt": (to_vtt(cues), "text/vtt"),
            "json": (to_timing_json(cues, inputs=spans), "application/json"),
        }
    filename = f"{output.name}.{extension(fmt)}"
    key = prefix + filename
    subtitles: dict[str, str] = {}
    with phases.timed("upload"):
        storage.put_bytes(key, data, content_type(fmt))
        for suffix, (text, mime) in documents.items():
            sub_name = f"{output.name}.{suffix}"
            storage.put_bytes(prefix + sub_name, text.encode(), mime)
            subtitles["timing" if suffix == "json" else suffix] = storage.url_for(prefix + sub_name, filename=sub_name)
    return {
        "url": storage.url_for(key, filename=filename),
        "key": key,
        "filename": filename,
        "format": fmt,
        "duration_seconds": round(len(audio) / rate, 3),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "subtitles": subtitles,
    }


def upload_manifest(storage: Storage, prefix: str, results: dict[str, dict]) -> None:
    """A batch of separate files also gets a manifest listing them (what a game studio imports)."""
    manifest = [
        {"id": input_id, **{k: v for k, v in result.items() if k != "url"}} for input_id, result in results.items()
    ]
    storage.put_bytes(prefix + "manifest.json", json.dumps({"files": manifest}, indent=2).encode(), "application/json")
