"""A speak unit: generate the chunks of some streams of a job, checkpointed by time, through the one engine.

The unit loads its chunk list (planned once by the plan unit), skips the chunks a part object already
holds (a unit given back resumes after them, each stream from the carry of its last durable chunk),
and hands the rest to `Engine.generate`, which shares the process's batch with every other unit
running in this process. Every kept chunk is counted at once (`UnitStore.progress`: what the job's
progress shows; False means the job stopped) and kept in memory; a background writer rolls what it
holds into one FLAC part every `NARRATE_CHECKPOINT_INTERVAL_SECONDS` once it holds at least
`NARRATE_CHECKPOINT_MIN_AUDIO_SECONDS` of audio, at the end and when the worker is told to stop, so
generation never waits on storage, storage sees at most one part per that much speech, and a crash
costs at most one interval (or that much audio) of work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import numpy as np

from shared import metrics
from shared.audio.trim import trim_silence
from shared.jobs import JobCreate, JobPriority
from shared.lease import LeaseLost
from shared.speech_stream import SpeechChannel, SpeechPiece
from shared.storage import StorageError
from shared.storage_keys import checkpoint_part_key
from shared.units import DurableChunk, UnitClaim
from shared.usage import record_chunk_usage
from worker import checkpoints, line_cache
from worker.assembly import Mastering
from worker.engines.base import ChunkRequest, ChunkResult
from worker.outcomes import Stopped
from worker.planning import PlannedChunk, chunks_from_json, pause_after
from worker.qc import ChunkCheck, QualityControl
from worker.runtime import Runtime
from worker.timed_lines import TimedLines
from worker.voice_embeddings import VoiceUnavailable, load_job_voices

log = logging.getLogger(__name__)


class ShuttingDown(Exception):
    """The worker was told to stop: the unit checkpoints what it has and is handed back."""


@dataclass
class _Finished:
    result: ChunkResult
    audio: np.ndarray
    quality: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    """A line's chunk the engine could not synthesise (`{code, message}`; no audio): its line fails."""


@dataclass
class PartWriter:
    """Rolls finished chunks into part objects in a background thread, one part at a time, in order.

    `add` never waits on storage; an error of a write (storage down, the job stopped, the lease lost)
    is raised by the next `add` or by `close`. `written` lists every part key this holder wrote, and
    `recorded` those the store accepted, so a fenced-out holder deletes only its own unrecorded parts.
    """

    rt: Runtime
    claim: UnitClaim
    interval: float
    min_samples: int = 0
    """Samples a part must hold before the interval rolls it."""
    buffer: list[_Finished] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)
    _pending: list[Future[None]] = field(default_factory=list)
    _last_roll: float = field(default_factory=time.monotonic)
    _parts: int = 0
    _buffered: int = 0

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")

    def add(self, finished: _Finished) -> None:
        self.raise_failed()
        self.buffer.append(finished)
        self._buffered += len(finished.audio)
        if time.monotonic() - self._last_roll >= self.interval and self._buffered >= self.min_samples:
            self.roll()

    def roll(self) -> None:
        """Write what the buffer holds as one part (in the background)."""
        self._last_roll = time.monotonic()
        if not self.buffer:
            return
        chunks, self.buffer, self._buffered = self.buffer, [], 0
        key = checkpoint_part_key(self.claim.job_id, self.claim.unit, self.claim.attempts, self._parts)
        self._parts += 1
        self.written.append(key)
        self._pending.append(self._pool.submit(self._write, key, chunks))

    def raise_failed(self) -> None:
        for future in [f for f in self._pending if f.done()]:
            self._pending.remove(future)
            future.result()

    def close(self) -> None:
        """Wait for every part written so far; raises the first write's error."""
        try:
            while self._pending:
                self._pending.pop(0).result()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Drop the parts still queued (they would fail the same way, each after its own retries); the one
        being written ends first."""
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()

    def _write(self, key: str, chunks: list[_Finished]) -> None:
        rate = self.rt.engine.sample_rate
        offsets = checkpoints.save_part(self.rt.storage, key, [c.audio for c in chunks], rate)
        durable = [
            DurableChunk(
                key=c.result.key,
                offset=offset,
                samples=len(c.audio),
                seconds=len(c.audio) / rate,
                synth_seconds=c.result.synth_seconds,
                carry=c.result.carry,
                quality=c.quality,
                error=c.error,
            )
            for c, offset in zip(chunks, offsets, strict=True)
        ]
        if not self.rt.units.checkpoint(self.claim, key, durable):
            raise Stopped
        self.recorded.add(key)
        for chunk in durable:
            record_chunk_usage(
                self.rt.services,
                self.claim.job_id,
                chunk.key,
                audio_seconds=chunk.seconds,
                engine_seconds=chunk.synth_seconds,
            )

    def drop_unrecorded(self) -> None:
        """A fenced-out holder's parts that no record points to (the new holder resumes from the others)."""
        for key in self.written:
            if key not in self.recorded:
                try:
                    self.rt.storage.delete(key)
                except StorageError as exc:
                    log.warning("could not delete unrecorded part %s (%s)", key, exc)


def run_speak(claim: UnitClaim, rt: Runtime, shutting_down: threading.Event) -> str:
    """Generate the unit's missing chunks; returns what `finish_unit` said ("done", "assemble",
    "stopped"). Raises `Stopped`, `ShuttingDown`, `LeaseLost` or a storage, voice or engine error."""
    raw = rt.units.unit_chunks(claim.job_id, claim.unit)
    spec = rt.jobs.spec(claim.job_id)
    if raw is None or spec is None:
        raise Stopped
    # A batch's lines in a voice that cannot be used were failed at planning and have no chunks here;
    # a voice of this unit's own chunks that went since fails the job (never spoken in another voice).
    unavailable: dict[str, VoiceUnavailable] = {}
    chunks = chunks_from_json(raw, load_job_voices(spec, claim.tenant, rt, unavailable))
    for planned in chunks:
        if planned.request.voice in unavailable:
            raise unavailable[planned.request.voice]
    writer = PartWriter(
        rt,
        claim,
        rt.settings.checkpoint_interval_seconds,
        min_samples=round(rt.settings.checkpoint_min_audio_seconds * rt.engine.sample_rate),
    )
    try:
        try:
            _generate(claim, rt, spec, chunks, writer, shutting_down)
        except ShuttingDown:
            writer.roll()  # what it has is kept: the next holder resumes after it
            writer.close()
            raise
        writer.roll()
        writer.close()
    except LeaseLost:
        writer.abandon()
        writer.drop_unrecorded()
        raise
    except BaseException:
        writer.abandon()
        raise
    outcome = rt.units.finish_unit(claim)
    if outcome == "stopped":
        raise Stopped
    return outcome


def _generate(
    claim: UnitClaim,
    rt: Runtime,
    spec: JobCreate,
    chunks: list[PlannedChunk],
    writer: PartWriter,
    shutting_down: threading.Event,
) -> None:
    """The engine's draws, each checked (`worker.qc`) off the engine's loop; chunks that fail are drawn
    again in rounds after the unit's pass, and the best draw of each is kept (flagged when it still fails)."""
    engine, job_id = rt.engine, claim.job_id
    done = rt.jobs.done_chunks(job_id)
    remaining = [planned for planned in chunks if planned.key not in done]
    if not remaining:
        return
    carry_in: dict[int, bytes] = {}
    by_stream: dict[int, list[PlannedChunk]] = {}
    for planned in chunks:
        by_stream.setdefault(planned.request.stream, []).append(planned)
    previous: dict[str, str] = {}
    """chunk key -> the key of the chunk before it in its stream (whose carry a redraw continues from)"""
    for stream, own in by_stream.items():
        previous.update((later.key, earlier.key) for earlier, later in pairwise(own))
        first_missing = next((i for i, p in enumerate(own) if p.key not in done), None)
        carry = own[0].carry_in if first_missing == 0 else None  # a pickup: the original's neighbour
        if first_missing:
            carry = done[own[first_missing - 1].key].carry
        if carry is not None:
            carry_in[stream] = carry
    urgent = claim.priority == JobPriority.INTERACTIVE
    requests = [replace(p.request, urgent=True) if urgent else p.request for p in remaining]
    carries: dict[str, bytes | None] = {key: chunk.carry for key, chunk in done.items()}
    refused: set[str] = set()
    qc = rt.quality()
    keeper = _Keeper(claim, rt, writer, _Listener.of(claim, rt, remaining, spec), shutting_down)

    def review(request: ChunkRequest, result: ChunkResult) -> bool:
        # The engine's own quick redraw, before the stream goes on: the heuristics only, judged on the
        # untrimmed draw (the check finds the speech inside it itself). The recogniser comes later.
        verdict = qc.heuristic(result.audio, engine.sample_rate, request.expected_seconds)
        if not verdict.ok and request.key not in refused:  # the engine draws a refused chunk once more
            log.warning("job %s chunk %s: %s, regenerating", job_id, request.key, verdict.problem)
            metrics.CHUNKS_REDRAWN.inc()
            refused.add(request.key)
        return verdict.ok

    by_key = {planned.key: planned for planned in remaining}
    pending: deque[_Draw] = deque()
    retry: list[_Draw] = []
    # A line of a line sheet that the engine cannot synthesise fails alone; in any other job it fails the job.
    line_batch = line_cache.is_line_batch(spec)
    # A timed line's chunks are held until the line is complete, measured and redrawn whole when it cannot
    # be fitted (`worker.timed_lines`); what it lets through is checked like any other chunk.
    lines = TimedLines.of(rt, spec, chunks, remaining, review, urgent=urgent)
    results = engine.generate(requests, carry_in, review)
    try:
        for result in results:
            carries[result.key] = result.carry
            if result.error is not None and not line_batch:
                raise result.error
            audio = result.audio if result.error is not None else trim_silence(result.audio, engine.sample_rate)
            for kept, kept_audio in lines.hold(result, audio):
                if kept.error is not None:
                    keeper.fail(kept)
                    continue
                draws = 2 if kept.key in refused else 1
                pending.append(_Draw.of(by_key[kept.key], kept, kept_audio, draws, qc, engine.sample_rate))
            while pending and pending[0].check.done():  # in order, without waiting for the recogniser
                keeper.settle(pending.popleft(), retry, qc.redraws)
    finally:
        results.close()  # cancels what is left of this unit's rows; the engine stays usable
    while pending:
        keeper.settle(pending.popleft(), retry, qc.redraws)
    while retry:
        retry = _redraw(retry, rt, qc, keeper, carries, previous, carry_in)


def _redraw(
    failed: list[_Draw],
    rt: Runtime,
    qc: QualityControl,
    keeper: _Keeper,
    carries: dict[str, bytes | None],
    previous: dict[str, str],
    carry_in: dict[int, bytes],
) -> list[_Draw]:
    """One round: every failed chunk drawn once more (each in a stream of its own, continuing from the
    carry of the chunk before it), side by side in the engine's batch; returns those still to draw."""
    requests, carry = [], {}
    for stream, best in enumerate(failed):
        request = best.planned.request
        for _ in range(best.draws):  # the seed of the next draw, past the ones the engine made itself
            request = request.redraw()
        requests.append(replace(request, stream=stream, seq=0, urgent=best.request.urgent))
        before = previous.get(best.planned.key)
        context = carries.get(before) if before is not None else carry_in.get(best.planned.request.stream)
        if context is not None:
            carry[stream] = context
        if best.draws == 1:
            metrics.CHUNKS_REDRAWN.inc()
    sr = rt.engine.sample_rate
    drawn: dict[str, _Draw] = {}
    results = rt.engine.generate(requests, carry, None)
    try:
        for result in results:
            if result.error is not None:  # this redraw could not be made: the chunk's best draw stands
                continue
            index = next(i for i, r in enumerate(requests) if r.key == result.key)
            best = failed[index]
            audio = trim_silence(result.audio, sr)
            drawn[result.key] = _Draw.of(best.planned, result, audio, best.draws + 1, qc, sr, requests[index])
    finally:
        results.close()
    still: list[_Draw] = []
    for best in failed:
        new = drawn.get(best.planned.key)
        if new is None:  # `settle` records the draw on its check
            best.draws += 1
        else:
            new.result.carry = best.result.carry  # the next chunk was generated after the first draw's context
            new_check, old_check = new.checked(), best.checked()
            if new_check.badness < old_check.badness:
                best = new
            else:
                old_check.draws = new.draws
                best.draws = new.draws
        keeper.settle(best, still, qc.redraws)
    return still


@dataclass
class _Draw:
    """A draw of a chunk and its check (running in the quality-control pool)."""

    planned: PlannedChunk
    request: ChunkRequest
    result: ChunkResult
    audio: np.ndarray
    """Trimmed: what is kept."""
    draws: int
    """Draws of the chunk made so far, this one included."""
    check: Future[ChunkCheck]

    @classmethod
    def of(
        cls,
        planned: PlannedChunk,
        result: ChunkResult,
        audio: np.ndarray,
        draws: int,
        qc: QualityControl,
        sr: int,
        request: ChunkRequest | None = None,
    ) -> _Draw:
        """`audio`: the draw trimmed to its sound (`trim_silence`), as it is kept."""
        check = qc.submit(audio, sr, planned.request.text, planned.request.expected_seconds)
        return cls(planned, request or planned.request, result, audio, draws, check)

    def checked(self) -> ChunkCheck:
        found = self.check.result()
        found.draws = self.draws
        return found


@dataclass
class _Keeper:
    """Keeps a chunk's chosen draw: progress, checkpoint, speech stream, metrics."""

    claim: UnitClaim
    rt: Runtime
    writer: PartWriter
    listener: _Listener | None
    shutting_down: threading.Event

    def settle(self, draw: _Draw, retry: list[_Draw], redraws: int) -> None:
        """Keep the draw when it passed or the chunk has had its draws; else queue it for another."""
        found = draw.checked()
        if not found.ok and draw.draws <= redraws:
            retry.append(draw)
            return
        if not found.ok:
            metrics.CHUNKS_FLAGGED.inc()
            log.warning(
                "job %s chunk %s: still %s after %d draws (wer %s, missing %s); kept the best, flagged",
                self.claim.job_id, draw.planned.key, found.problem, draw.draws, found.wer, found.missing[:5],
            )  # fmt: skip
        self.keep(draw, found)

    def fail(self, result: ChunkResult) -> None:
        """A line's chunk the engine could not synthesise: counted as done, recorded with its error and no
        audio (the line fails at assembly; the other lines go on)."""
        assert result.error is not None
        if not self.rt.units.progress(self.claim, seconds=0.0, synth_seconds=result.synth_seconds):
            raise Stopped
        log.warning("job %s chunk %s failed alone: %s", self.claim.job_id, result.key, result.error)
        error = {"code": result.error.code, "message": str(result.error)}
        self.writer.add(_Finished(result, np.zeros(0, np.float32), None, error))
        if self.shutting_down.is_set():
            raise ShuttingDown

    def keep(self, draw: _Draw, found: ChunkCheck) -> None:
        rt, result, audio = self.rt, draw.result, draw.audio
        seconds = len(audio) / rt.engine.sample_rate
        if not rt.units.progress(self.claim, seconds=seconds, synth_seconds=result.synth_seconds):
            raise Stopped
        self.writer.add(_Finished(result, audio, found.to_dict()))
        if self.listener is not None:
            self.listener.publish(result.key, audio)
        metrics.AUDIO_SECONDS.inc(seconds)
        metrics.SYNTHESIS_SECONDS.inc(result.synth_seconds)
        if seconds > 0:
            metrics.CHUNK_RTF.observe(result.synth_seconds / seconds)
        rt.report_gpu_memory()
        if self.shutting_down.is_set():
            raise ShuttingDown


@dataclass
class _Listener:
    """A streaming speech request waits for this job's audio (`shared.speech_stream`): every kept chunk
    is published as it is generated, with its place in reading order and the pause after it (the job's
    own pauses and inline `[pause]` marks, as its file has them)."""

    channel: SpeechChannel
    job_id: str
    sample_rate: int
    chunks: dict[str, tuple[int, int]]
    """chunk key -> (index in reading order, pause after it in ms)"""

    @classmethod
    def of(cls, claim: UnitClaim, rt: Runtime, remaining: list[PlannedChunk], spec: JobCreate) -> _Listener | None:
        channel = SpeechChannel(rt.services.redis, rt.settings.key_prefix)
        try:
            if not channel.is_open(claim.job_id):
                return None
        except Exception as exc:  # Redis down: the unit fails on its next store call, not here
            log.warning("job %s: could not look for a speech stream (%s)", claim.job_id, exc)
            return None
        pauses = Mastering.from_settings(rt.settings).pauses_for(spec)  # as the assembly spaces the file
        chunks = {
            p.key: (
                p.chunk.index,
                p.chunk.pause_ms if p.chunk.pause_ms is not None else pause_after(p.chunk.boundary, pauses),
            )
            for p in remaining
        }
        return cls(channel, claim.job_id, rt.engine.sample_rate, chunks)

    def publish(self, key: str, audio: np.ndarray) -> None:
        index, pause_ms = self.chunks[key]
        try:
            self.channel.publish(self.job_id, SpeechPiece(index, audio, self.sample_rate, pause_ms))
        except Exception as exc:  # the stream is a courtesy: the job's file does not depend on it
            log.warning("job %s: could not publish chunk %s to its speech stream (%s)", self.job_id, key, exc)
