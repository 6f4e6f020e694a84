"""Stitch a job's chunks into files, normalise, encode and upload them with subtitles."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.audio.encode import encode
from shared.audio.formats import AudioFormat
from shared.audio.loudness import normalize_loudness
from shared.audio.resample import resample
from shared.audio.stitch import stitch
from shared.audio.subtitles import Cue, to_srt, to_timing_json, to_vtt
from shared.jobs import JobCreate, StoredFile, StoredObject
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


@dataclass(frozen=True)
class Mastering:
    """The settings that shape a file's sound: pauses between chunks, loudness and peak."""

    pauses: dict[str, int]
    """Milliseconds after a chunk, by its boundary (`clause`, `sentence`, `paragraph`, `end`), and
    between inputs (`chapter`)."""
    loudness_target_lufs: float
    peak_dbfs: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Mastering:
        pauses = {
            "clause": settings.pause_clause_ms,
            "sentence": settings.pause_sentence_ms,
            "paragraph": settings.pause_paragraph_ms,
            "end": settings.pause_paragraph_ms,
            "chapter": settings.pause_chapter_ms,
        }
        return cls(pauses, settings.loudness_target_lufs, settings.peak_dbfs)


@dataclass(frozen=True)
class InputSpan:
    """Where one input lies in a file (the timing JSON lists them)."""

    id: str
    start: float
    end: float


@dataclass(frozen=True)
class RenderedFile:
    """One output file's audio, ready to encode, with what is written beside it."""

    audio: np.ndarray
    sample_rate: int
    cues: list[Cue]
    """One subtitle cue per chunk."""
    chapters: list[tuple[float, str]]
    """(start seconds, input id) of every input in the file."""
    spans: list[InputSpan]

    @property
    def duration_seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def outputs_for(job_id: str, spec: JobCreate) -> list[OutputFile]:
    if spec.concatenate or len(spec.inputs) == 1:
        return [OutputFile(job_id, list(range(len(spec.inputs))))]
    return [OutputFile(input_id, [index], per_input=True) for index, input_id in enumerate(spec.input_ids())]


def build_file(
    output: OutputFile,
    plan: Plan,
    load: Callable[[PlannedChunk], np.ndarray],
    *,
    sample_rate: int,
    file_rate: int,
    mastering: Mastering,
    input_ids: list[str],
    phases: Phases,
) -> RenderedFile:
    """Stitch the output's chunks (at the engine's `sample_rate`), master them and resample once, to
    `file_rate` (the rate the encoded file will have)."""
    pauses = mastering.pauses
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
            return RenderedFile(np.zeros(int(0.5 * file_rate), np.float32), file_rate, [], [], [])
        stitched = stitch(segments, gaps, sample_rate)
        del segments
    with phases.timed("loudness"):
        audio = normalize_loudness(
            stitched.audio, sample_rate, target_lufs=mastering.loudness_target_lufs, peak_dbfs=mastering.peak_dbfs
        )
        if file_rate != sample_rate:
            audio = resample(audio, sample_rate, file_rate)
    cues = [Cue(start, end, planned.chunk.text) for planned, (start, end) in zip(owners, stitched.spans, strict=True)]
    chapters: list[tuple[float, str]] = []
    spans: list[InputSpan] = []
    for input_index in output.inputs:
        own = [span for planned, span in zip(owners, stitched.spans, strict=True) if planned.input_index == input_index]
        if own:
            chapters.append((own[0][0], input_ids[input_index]))
            spans.append(InputSpan(input_ids[input_index], own[0][0], own[-1][1]))
    return RenderedFile(audio, file_rate, cues, chapters, spans)


def upload_file(
    storage: Storage,
    prefix: str,
    output: OutputFile,
    rendered: RenderedFile,
    fmt: AudioFormat,
    tags: dict[str, str],
    phases: Phases,
) -> StoredFile:
    """Encode and upload one file (with `tags`) and its subtitles under `prefix`; what the job record keeps
    of it (keys: links are minted when the job is read)."""
    with phases.timed("encoding"):
        chapters = rendered.chapters if len(rendered.chapters) > 1 else None
        data = encode(rendered.audio, rendered.sample_rate, fmt, chapters=chapters, metadata=tags)
        spans = [(span.id, span.start, span.end) for span in rendered.spans]
        documents = {
            "srt": (to_srt(rendered.cues), "application/x-subrip"),
            "vtt": (to_vtt(rendered.cues), "text/vtt"),
            "json": (to_timing_json(rendered.cues, inputs=spans), "application/json"),
        }
    filename = f"{output.name}.{fmt.extension}"
    key = prefix + filename
    subtitles: dict[str, str] = {}
    with phases.timed("upload"):
        storage.put_bytes(key, data, fmt.content_type)
        for suffix, (text, mime) in documents.items():
            sub_name = f"{output.name}.{suffix}"
            storage.put_bytes(prefix + sub_name, text.encode(), mime)
            subtitles["timing" if suffix == "json" else suffix] = prefix + sub_name
    return StoredFile(
        key=key,
        filename=filename,
        format=fmt,
        duration_seconds=round(rendered.duration_seconds, 3),
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        subtitles=subtitles,
    )


def upload_manifest(
    storage: Storage, key: str, job_id: str, spec: JobCreate, results: dict[str, StoredFile], default_voice: str
) -> StoredObject:
    """A batch of separate files also gets a manifest listing them (what a game studio imports): per line
    its file, checksum, voice and a digest of its text, so a client can check a download and tell which
    lines changed since an earlier batch."""
    texts = dict(zip(spec.input_ids(), spec.inputs, strict=True))
    files = [
        {
            "id": input_id,
            "file": result.filename,
            "key": result.key,
            "format": result.format.value,
            "duration_seconds": result.duration_seconds,
            "bytes": result.bytes,
            "sha256": result.sha256,
            "voice": texts[input_id].voice or spec.voice or default_voice,
            "text_sha256": hashlib.sha256(texts[input_id].text.encode()).hexdigest(),
            "status": "succeeded",
        }
        for input_id, result in results.items()
    ]
    data = json.dumps({"job_id": job_id, "files": files}, indent=2).encode()
    storage.put_bytes(key, data, "application/json")
    return StoredObject(key=key, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
