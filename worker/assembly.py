"""Stitch a job's chunks into files, master, encode and upload them with subtitles.

A file is built chapter by chapter (one chapter per input): its chunks are stitched with the job's
pauses, resampled once to the file's rate and mastered there (`shared.audio.mastering`: room tone,
level, true-peak limiting after the last resample), so each chapter of a book meets the preset on its
own, as retailers check it. A book job (`JobCreate.book.chapter_files`) gets its whole-book file and one
file per chapter from the same outputs; the job's choices (mastering, pauses, titles, tags, cover,
bitrate) travel with each `OutputFile`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.audio.encode import SNDFILE_TAGS, encode_to_file
from shared.audio.fit import FitBounds, plan_fit, stretch
from shared.audio.formats import AudioFormat
from shared.audio.mastering import MasteringReport, Meter, master_padded, padding, room_tone
from shared.audio.pcm import ArraySamples, PcmFile, Samples
from shared.audio.presets import MasteringTargets, with_overrides
from shared.audio.resample import resample_padded
from shared.audio.stitch import stitch
from shared.audio.subtitles import Cue, to_srt, to_timing_json, to_vtt
from shared.audio.trim import sound_bounds
from shared.jobs import (
    JobCreate,
    JobError,
    LineFit,
    LineStatus,
    MasteringOptions,
    StoredFile,
    StoredObject,
    render_filename,
)
from shared.settings import Settings
from shared.storage import Storage
from shared.text.chunking import join_chunks
from worker import read_along
from worker.alignment import Aligner, estimate, stretched
from worker.phases import Phases
from worker.planning import PLAN_LANGUAGE, Plan, PlannedChunk, pause_after
from worker.timing import FileTiming, input_timing, words_json


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
    fit: FitBounds = field(default_factory=lambda: FitBounds(0.8, 1.25))
    """How far a timed line may be time-stretched."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Mastering:
        pauses = {
            "clause": settings.pause_clause_ms,
            "sentence": settings.pause_sentence_ms,
            "paragraph": settings.pause_paragraph_ms,
            "end": settings.pause_paragraph_ms,
            "chapter": settings.pause_chapter_ms,
            "turn": settings.pause_turn_ms,
        }
        fit = FitBounds(settings.fit_min_ratio, settings.fit_max_ratio)
        return cls(pauses, settings.loudness_target_lufs, settings.peak_dbfs, fit)

    def pauses_for(self, spec: JobCreate | None) -> dict[str, int]:
        """The settings' pauses with the job's own in their place."""
        return spec.effective_pauses(self.pauses) if spec is not None else dict(self.pauses)

    def targets_for(self, spec: JobCreate | None, input_index: int | None = None) -> MasteringTargets:
        """The job's mastering targets (`default`: the settings' loudness and peak, as a true peak), with
        input `input_index`'s own `loudness_lufs` in place of the level when it has one."""
        options = spec.mastering_options() if spec is not None else MasteringOptions()
        targets = options.targets(default_lufs=self.loudness_target_lufs, default_peak_dbfs=self.peak_dbfs)
        own = spec.inputs[input_index].loudness_lufs if spec is not None and input_index is not None else None
        return with_overrides(targets, loudness_lufs=own) if own is not None else targets


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
    """One subtitle cue per sentence (a long one cut between words), from `timing`."""
    chapters: list[tuple[float, str]]
    """(start seconds, title) of every input in the file: its `title`, else its id."""
    spans: list[InputSpan]
    report: MasteringReport | None = None
    fits: dict[str, LineFit] = field(default_factory=dict)
    """Input id -> fit of each timed line in the file."""
    timing: FileTiming = field(default_factory=FileTiming)
    """Word, sentence and phone times (forced alignment, or the estimate where it failed or is off)."""
    chunk_spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Chunk key -> (start, end) seconds of the chunk in the file (the quality report's offsets)."""
    gains: dict[str, float] = field(default_factory=dict)
    """The level gain of each chapter (`<file>/<input>`): a pickup holds them (`build_file(gains=...)`)."""

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def audio(self) -> np.ndarray:
        """All samples in memory (short files, tests); the encoder reads `samples` block by block."""
        return self.samples.read(0, len(self.samples))


def planned_voices(
    spec: JobCreate, default_voice: str, spoken: Sequence[Sequence[str] | None] | None
) -> dict[str, tuple[str, str | None]]:
    """Input id -> (voice, language) it is spoken in: as the plan unit resolved them (`spoken`), else as
    the job names them."""
    planned = {
        input_id: (item.voice or spec.voice or default_voice, item.language or spec.language)
        for input_id, item in zip(spec.input_ids(), spec.inputs, strict=True)
    }
    planned.update(
        {input_id: (pair[0], pair[1]) for input_id, pair in zip(planned, spoken or [], strict=False) if pair}
    )
    return planned


def outputs_for(
    job_id: str,
    spec: JobCreate,
    *,
    default_voice: str = "",
    spoken: Sequence[Sequence[str] | None] | None = None,
) -> list[OutputFile]:
    """The files of a job: one for all inputs (or one per input when `concatenate` is false, named by the
    job's `filename_template` with each input's voice and language as planned, `spoken[i]`), and for a
    book with `chapter_files` also one per chapter, named `NN-title` and tagged with its title."""
    ids = spec.input_ids()
    planned = planned_voices(spec, default_voice, spoken)
    if spec.concatenate or len(spec.inputs) == 1:
        outputs = [OutputFile(job_id, list(range(len(spec.inputs))), spec=spec)]
    else:
        outputs = [
            OutputFile(
                render_filename(
                    spec.filename_template,
                    id=input_id,
                    voice=planned[input_id][0],
                    language=planned[input_id][1] or "und",
                    index=index,
                ),
                [index],
                per_input=True,
                spec=spec,
            )
            for index, input_id in enumerate(ids)
        ]
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
    aligner: Aligner | None = None,
    gains: dict[str, float] | None = None,
) -> RenderedFile:
    """Stitch, resample and master the output's chapters one by one (chunks at the engine's
    `sample_rate`, the file at `file_rate`), then measure the file against the job's targets. Each
    chunk's words are timed by `aligner` (forced alignment) before stitching, or estimated without one.
    `gains`: each chapter's level gain held from an earlier render (`RenderedFile.gains`) instead of
    measured."""
    spec = output.spec
    pauses = mastering.pauses_for(spec)
    targets = mastering.targets_for(spec, output.inputs[0] if len(output.inputs) == 1 else None)
    titles = spec.input_titles() if spec is not None else input_ids
    head, tail = padding(targets, file_rate)
    spoken = [index for index in output.inputs if plan.inputs[index]]
    pcm = PcmFile() if len(spoken) > 1 else None
    single: np.ndarray | None = None
    meter = Meter(file_rate)
    fits: dict[str, LineFit] = {}
    timing = FileTiming()
    chapters: list[tuple[float, str]] = []
    spans: list[InputSpan] = []
    chunk_spans: dict[str, tuple[float, float]] = {}
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
        with phases.timed("alignment"):
            alignments = [
                # Phones (lip-sync in the manifest) only for a batch's line files.
                aligner.align(
                    audio,
                    sample_rate,
                    planned.chunk.text,
                    phones=output.per_input,
                    language=planned.request.language or PLAN_LANGUAGE,
                )
                if aligner is not None
                else estimate(audio, sample_rate, planned.chunk.text)
                for planned, audio in zip(chunks, segments, strict=True)
            ]
            del segments
        speech_audio, stitched_spans = stitched.audio, stitched.spans
        del stitched
        in_head, in_tail = head, tail
        if spec is not None and spec.padding_ms is not None:
            speech_audio, stitched_spans = _trim_to_sound(speech_audio, stitched_spans, sample_rate)
            in_head = in_tail = round(spec.padding_ms * file_rate / 1000)
        item = spec.inputs[input_index] if spec is not None else None
        if item is not None and item.timed:
            with phases.timed("fitting"):
                fit = plan_fit(item, len(speech_audio) / sample_rate, (in_head + in_tail) / file_rate, mastering.fit)
                speech_audio = stretch(speech_audio, sample_rate, fit.stretch)
                stitched_spans = [(start * fit.stretch, end * fit.stretch) for start, end in stitched_spans]
        else:
            fit = None
        with phases.timed("loudness"):
            # Resampled straight into the chapter's padded buffer: the last resample, before mastering.
            audio, length = resample_padded(speech_audio, sample_rate, file_rate, in_head, in_tail)
            del speech_audio
            own = mastering.targets_for(spec, input_index) if len(output.inputs) > 1 else targets
            name = f"{output.name}/{input_index}"
            applied = master_padded(audio, in_head, length, file_rate, own, seed=input_index, gain=held.get(name))
            if applied is not None:
                applied_gains[name] = applied
            meter.add(audio)
        if fit is not None and fit.status is not None and fit.target_seconds is not None:
            fits[input_ids[input_index]] = LineFit(
                status=fit.status,
                duration_seconds=round(audio.shape[0] / file_rate, 3),
                target_seconds=fit.target_seconds,
                ratio=round(fit.ratio, 4),
            )
        base = offset / file_rate
        speech = base + in_head / file_rate
        if fit is not None and fit.stretch != 1.0:
            alignments = [stretched(alignment, fit.stretch) for alignment in alignments]
        with phases.timed("alignment"):
            input_timing(
                timing,
                input_index=input_index,
                input_id=input_ids[input_index],
                original=item.spoken_text if item is not None else join_chunks([p.chunk for p in chunks]),
                chunks=chunks,
                alignments=alignments,
                starts=[speech + start for start, _ in stitched_spans],
                language=chunks[0].request.language or PLAN_LANGUAGE,
            )
        chunk_spans.update(
            (p.key, (speech + start, speech + end)) for p, (start, end) in zip(chunks, stitched_spans, strict=True)
        )
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
    cues = [Cue(sentence.start, sentence.end, sentence.text, sentence.speaker) for sentence in timing.sentences]
    return RenderedFile(samples, file_rate, cues, chapters, spans, report, fits, timing, chunk_spans, applied_gains)


def _trim_to_sound(
    audio: np.ndarray, spans: list[tuple[float, float]], sr: int
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """An input's stitched speech without silence at either end (its padding is laid anew around it),
    and its chunks' spans moved with it."""
    bounds = sound_bounds(audio, sr)
    if bounds is None:
        return audio, spans
    start, end = bounds
    shift, last = start / sr, (end - start) / sr
    moved = [(min(last, max(0.0, a - shift)), min(last, max(0.0, b - shift))) for a, b in spans]
    return audio[start:end], moved


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
        read_along = None
        if spec is not None and spec.book is not None and spec.book.read_along and not output.per_input:
            read_along = prefix + f"{output.name}.epub"
            epub = os.path.join(directory, f"{output.name}.epub")
            with phases.timed("encoding"):
                _write_read_along(epub, output, rendered, path, fmt, directory)
            with phases.timed("upload"):
                storage.put_file(read_along, epub, "application/epub+zip")
    if isinstance(rendered.samples, PcmFile):
        rendered.samples.close()
    with phases.timed("encoding"):
        spans = [(span.id, span.start, span.end) for span in rendered.spans]
        documents = {
            "srt": (to_srt(rendered.cues), "application/x-subrip"),
            "vtt": (to_vtt(rendered.cues), "text/vtt"),
            "json": (to_timing_json(rendered.cues, inputs=spans), "application/json"),
            "words.json": (words_json(rendered.timing), "application/json"),
        }
    subtitles: dict[str, str] = {}
    with phases.timed("upload"):
        for suffix, (text, mime) in documents.items():
            sub_name = f"{output.name}.{suffix}"
            storage.put_bytes(prefix + sub_name, text.encode(), mime)
            subtitles[_DOCUMENT_KINDS.get(suffix, suffix)] = prefix + sub_name
    if read_along is not None:
        subtitles["read_along"] = read_along
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


_DOCUMENT_KINDS = {"json": "timing", "words.json": "words"}
"""`StoredFile.subtitles` keys of the documents whose suffix is not their name."""


def _write_read_along(
    epub: str, output: OutputFile, rendered: RenderedFile, path: str, fmt: AudioFormat, directory: str
) -> None:
    """The EPUB3 read-along of a book's whole file (`worker.read_along`), with this file's audio when
    reading systems play its format, else an MP3 of it."""
    spec = output.spec
    assert spec is not None and spec.book is not None
    if fmt in (AudioFormat.MP3, AudioFormat.M4B):
        audio, media_type = path, ("audio/mpeg" if fmt is AudioFormat.MP3 else "audio/mp4")
    else:
        audio, media_type = os.path.join(directory, "read-along.mp3"), "audio/mpeg"
        encode_to_file(rendered.samples, rendered.sample_rate, AudioFormat.MP3, audio)
    titles = spec.input_titles()
    chapters = [
        read_along.Chapter(
            titles[index],
            spec.inputs[index].spoken_text,
            [s for s in rendered.timing.sentences if s.input_index == index],
        )
        for index in output.inputs
    ]
    read_along.write_epub(
        epub,
        identifier=f"urn:narrate:{output.name}",
        title=spec.book.title or titles[0],
        author=spec.book.author,
        language=PLAN_LANGUAGE,
        chapters=chapters,
        audio_path=audio,
        audio_media_type=media_type,
    )


def _size_and_sha256(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


MANIFEST_COLUMNS: tuple[str, ...] = (
    "id", "status", "reused", "file", "key", "format", "duration_seconds", "bytes", "sha256", "voice",
    "language", "text_sha256", "fit_status", "error_code", "error_message",
)  # fmt: skip
"""The columns of `manifest.csv`, one row per input in the job's order (the JSON's `files` keys)."""


def upload_manifest(
    storage: Storage,
    keys: tuple[str, str],
    job_id: str,
    spec: JobCreate,
    results: dict[str, StoredFile],
    default_voice: str,
    fits: dict[str, LineFit] | None = None,
    spoken: Sequence[Sequence[str] | None] | None = None,
    lipsync: dict[str, dict[str, Any]] | None = None,
    *,
    failed: dict[str, JobError] | None = None,
    reused: set[str] | None = None,
) -> tuple[StoredObject, StoredObject]:
    """A batch of separate files also gets a manifest listing them (what a game studio imports), as JSON
    and as CSV (`keys`): per line its status (a failed line has its error and no file), whether its file
    came from the line cache, its file, checksum, voice and language (`spoken[i]`: input i's as planned)
    and a digest of its text, so a client can check a download and tell which lines changed since an
    earlier batch; in the JSON also a timed line's `fit` and its lip-sync data (`lipsync`: phoneme and
    viseme times, `worker.timing.lipsync`)."""
    failed, reused = failed or {}, reused or set()
    planned = planned_voices(spec, default_voice, spoken)
    rows: list[dict[str, Any]] = []
    for input_id, item in zip(spec.input_ids(), spec.inputs, strict=True):
        result = results.get(input_id)
        error = failed.get(input_id)
        if result is None and error is None:
            continue
        row: dict[str, Any] = {
            "id": input_id,
            "status": (LineStatus.SUCCEEDED if result is not None else LineStatus.FAILED).value,
            "reused": input_id in reused,
            "file": result.filename if result else None,
            "key": result.key if result else None,
            "format": result.format.value if result else None,
            "duration_seconds": result.duration_seconds if result else None,
            "bytes": result.bytes if result else None,
            "sha256": result.sha256 if result else None,
            "voice": planned[input_id][0],
            "language": planned[input_id][1],
            "text_sha256": hashlib.sha256(item.spoken_text.encode()).hexdigest(),
        }
        if error is not None:
            row["error"] = {"code": error.code, "message": error.message}
        if fits and input_id in fits:
            row["fit"] = fits[input_id].model_dump(mode="json")
        if lipsync and input_id in lipsync:
            row["lipsync"] = lipsync[input_id]
        rows.append(row)
    counts = {
        "succeeded": len(results),
        "failed": len(failed),
        "reused": len(reused),
        "synthesised": len(results) - len(reused),
    }
    data = json.dumps({"job_id": job_id, "lines": counts, "files": rows}, indent=2).encode()
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=MANIFEST_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        error = row.get("error") or {}
        cells = {name: row.get(name) for name in MANIFEST_COLUMNS if name in row}
        cells["reused"] = "true" if row["reused"] else "false"
        fit_status = (row.get("fit") or {}).get("status", "")
        writer.writerow(
            {
                **cells,
                "fit_status": fit_status,
                "error_code": error.get("code", ""),
                "error_message": error.get("message", ""),
            }
        )
    csv_data = table.getvalue().encode()
    storage.put_bytes(keys[0], data, "application/json")
    storage.put_bytes(keys[1], csv_data, "text/csv")
    return (
        StoredObject(key=keys[0], bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
        StoredObject(key=keys[1], bytes=len(csv_data), sha256=hashlib.sha256(csv_data).hexdigest()),
    )
