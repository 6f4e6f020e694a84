"""Stitch a job's chunks into files, master, encode and upload them with subtitles.

A file is built chapter by chapter (one chapter per input): its chunks are stitched with the job's
pauses, resampled once to the file's rate and mastered there (`shared.audio.mastering`: room tone,
level, true-peak limiting after the last resample), so each chapter of a book meets the preset on its
own, as retailers check it. A book job (`JobCreate.book.chapter_files`) gets its whole-book file and one
file per chapter from the same outputs; the job's choices (mastering, pauses, titles, tags, cover,
bitrate) travel with each `OutputFile`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.audio.encode import SNDFILE_TAGS, encode_to_file
from shared.audio.formats import AudioFormat
from shared.audio.mastering import MasteringReport, Meter, master_padded, padding, room_tone
from shared.audio.pcm import ArraySamples, PcmFile, Samples
from shared.audio.presets import MasteringTargets
from shared.audio.resample import resample_padded
from shared.audio.stitch import stitch
from shared.audio.subtitles import Cue, to_srt, to_timing_json, to_vtt
from shared.jobs import JobCreate, MasteringOptions, StoredFile, StoredObject
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
    format: AudioFormat | None = None
    """The file's format when it is not the job's (a book's per-chapter files)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of this file over the job's (a chapter file's title and track number)."""
    spec: JobCreate | None = field(default=None, compare=False, repr=False)
    """The job: its mastering, pauses, chapter titles, cover and bitrate."""


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

    def pauses_for(self, spec: JobCreate | None) -> dict[str, int]:
        """The settings' pauses with the job's own in their place."""
        return spec.effective_pauses(self.pauses) if spec is not None else dict(self.pauses)

    def targets_for(self, spec: JobCreate | None) -> MasteringTargets:
        """The job's mastering targets (`default`: the settings' loudness and peak, as a true peak)."""
        options = spec.mastering_options() if spec is not None else MasteringOptions()
        return options.targets(default_lufs=self.loudness_target_lufs, default_peak_dbfs=self.peak_dbfs)


@dataclass(frozen=True)
class InputSpan:
    """Where one input lies in a file (the timing JSON lists them)."""

    id: str
    start: float
    end: float


@dataclass(frozen=True)
class RenderedFile:
    """One output file's audio, ready to encode, with what is written beside it. The samples of a
    file of several chapters are spilled to a temporary file (`PcmFile`) as each chapter is mastered."""

    samples: Samples
    sample_rate: int
    cues: list[Cue]
    """One subtitle cue per chunk."""
    chapters: list[tuple[float, str]]
    """(start seconds, title) of every input in the file: its `title`, else its id."""
    spans: list[InputSpan]
    report: MasteringReport | None = None
    gains: dict[str, float] = field(default_factory=dict)
    """The level gain of each chapter (`<file>/<input>`): a pickup holds them (`build_file(gains=...)`)."""

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def audio(self) -> np.ndarray:
        """All samples in memory (short files, tests); the encoder reads `samples` block by block."""
        return self.samples.read(0, len(self.samples))


def outputs_for(job_id: str, spec: JobCreate) -> list[OutputFile]:
    """The files of a job: one for all inputs (or one per input when `concatenate` is false), and for a
    book with `chapter_files` also one per chapter, named `NN-title` and tagged with its title."""
    ids = spec.input_ids()
    if spec.concatenate or len(spec.inputs) == 1:
        outputs = [OutputFile(job_id, list(range(len(spec.inputs))), spec=spec)]
    else:
        outputs = [OutputFile(input_id, [index], per_input=True, spec=spec) for index, input_id in enumerate(ids)]
    chapter_format = spec.book.chapter_files if spec.book is not None else None
    if chapter_format is not None and not outputs[0].per_input:
        titles = spec.input_titles()
        width = max(2, len(str(len(ids))))
        for index, title in enumerate(titles):
            number = f"{index + 1:0{width}d}"
            tags = {"title": title, "tracknumber": f"{index + 1}/{len(ids)}"}
            name = f"{number}-{_slug(title)}"[:128] if spec.inputs[index].title else ids[index]
            outputs.append(OutputFile(name, [index], True, AudioFormat(chapter_format), tags, spec))
    return outputs


def _slug(title: str) -> str:
    """A title as a file-name stem: ASCII letters, digits and single dashes."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_title).strip("-") or "chapter"


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
    gains: dict[str, float] | None = None,
) -> RenderedFile:
    """Stitch, resample and master the output's chapters one by one (chunks at the engine's
    `sample_rate`, the file at `file_rate`), then measure the file against the job's targets. `gains`:
    each chapter's level gain held from an earlier render (`RenderedFile.gains`) instead of measured."""
    spec = output.spec
    pauses = mastering.pauses_for(spec)
    targets = mastering.targets_for(spec)
    titles = spec.input_titles() if spec is not None else input_ids
    head, tail = padding(targets, file_rate)
    spoken = [index for index in output.inputs if plan.inputs[index]]
    pcm = PcmFile() if len(spoken) > 1 else None
    single: np.ndarray | None = None
    meter = Meter(file_rate)
    cues: list[Cue] = []
    chapters: list[tuple[float, str]] = []
    spans: list[InputSpan] = []
    offset = 0  # samples at `file_rate` so far
    held, applied_gains = gains or {}, {}
    for position, input_index in enumerate(spoken):
        chunks = plan.inputs[input_index]
        with phases.timed("stitching"):
            segments = [load(planned) for planned in chunks]
            gaps = [
                planned.chunk.pause_ms
                if planned.chunk.pause_ms is not None
                else pause_after(planned.chunk.boundary, pauses)
                for planned in chunks[:-1]
            ]
            stitched = stitch(segments, gaps, sample_rate)
            del segments
        with phases.timed("loudness"):
            # Resampled straight into the chapter's padded buffer: the last resample, before mastering.
            audio, length = resample_padded(stitched.audio, sample_rate, file_rate, head, tail)
            stitched_spans = stitched.spans
            del stitched
            name = f"{output.name}/{input_index}"
            applied = master_padded(audio, head, length, file_rate, targets, seed=input_index, gain=held.get(name))
            if applied is not None:
                applied_gains[name] = applied
            meter.add(audio)
        base = offset / file_rate
        speech = base + head / file_rate
        cues += [
            Cue(speech + start, speech + end, p.chunk.text)
            for p, (start, end) in zip(chunks, stitched_spans, strict=True)
        ]
        chapters.append((base, titles[input_index]))
        spans.append(InputSpan(input_ids[input_index], speech + stitched_spans[0][0], speech + stitched_spans[-1][1]))
        offset += audio.shape[0]
        if pcm is None:
            single = audio
            continue
        pcm.append(audio)
        del audio
        if position < len(spoken) - 1 and pauses["chapter"] > 0:
            gap = round(pauses["chapter"] * file_rate / 1000)
            tone = targets.room_tone_db
            silence = (
                room_tone(gap, file_rate, tone, seed=1_000_000 + input_index)
                if tone is not None
                else np.zeros(gap, np.float32)
            )
            meter.add(silence)
            pcm.append(silence)
            offset += gap
    with phases.timed("loudness"):
        if pcm is None and single is None:
            single = np.zeros(int(0.5 * file_rate), np.float32)
            meter.add(single)
        report = meter.report(targets)
    samples: Samples = (
        pcm if pcm is not None else ArraySamples(single if single is not None else np.zeros(0, np.float32))
    )
    return RenderedFile(samples, file_rate, cues, chapters, spans, report, applied_gains)


def upload_file(
    storage: Storage,
    prefix: str,
    output: OutputFile,
    rendered: RenderedFile,
    fmt: AudioFormat,
    tags: dict[str, str],
    phases: Phases,
) -> StoredFile:
    """Encode and upload one file (with `tags`, the output's own over them) and its subtitles under
    `prefix`; what the job record keeps of it (keys: links are minted when the job is read). `fmt` is
    the job's format, used unless the output has its own."""
    fmt = output.format or fmt
    spec = output.spec
    file_tags = {**tags, **output.tags}
    if fmt is AudioFormat.WAV:  # RIFF INFO has a fixed set of fields
        file_tags = {key: value for key, value in file_tags.items() if key in SNDFILE_TAGS}
    cover = spec.book.cover if spec is not None and spec.book is not None else None
    filename = f"{output.name}.{fmt.extension}"
    key = prefix + filename
    with tempfile.TemporaryDirectory(prefix="narrate-encode-") as directory:
        path = os.path.join(directory, filename)
        with phases.timed("encoding"):
            chapters = rendered.chapters if len(rendered.chapters) > 1 else None
            encode_to_file(
                rendered.samples,
                rendered.sample_rate,
                fmt,
                path,
                chapters=chapters,
                metadata=file_tags,
                bitrate_kbps=spec.bitrate_kbps if spec is not None else None,
                cover=(cover.image(), cover.media_type) if cover is not None else None,
            )
            size, digest = _size_and_sha256(path)
        with phases.timed("upload"):
            storage.put_file(key, path, fmt.content_type)
    if isinstance(rendered.samples, PcmFile):
        rendered.samples.close()
    with phases.timed("encoding"):
        spans = [(span.id, span.start, span.end) for span in rendered.spans]
        documents = {
            "srt": (to_srt(rendered.cues), "application/x-subrip"),
            "vtt": (to_vtt(rendered.cues), "text/vtt"),
            "json": (to_timing_json(rendered.cues, inputs=spans), "application/json"),
        }
    subtitles: dict[str, str] = {}
    with phases.timed("upload"):
        for suffix, (text, mime) in documents.items():
            sub_name = f"{output.name}.{suffix}"
            storage.put_bytes(prefix + sub_name, text.encode(), mime)
            subtitles["timing" if suffix == "json" else suffix] = prefix + sub_name
    report: dict[str, Any] | None = rendered.report.to_dict() if rendered.report is not None else None
    return StoredFile(
        key=key,
        filename=filename,
        format=fmt,
        duration_seconds=round(rendered.duration_seconds, 3),
        bytes=size,
        sha256=digest,
        subtitles=subtitles,
        mastering=report,
    )


def _size_and_sha256(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


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
