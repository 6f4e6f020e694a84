"""A speak unit: generate the chunks of some streams of a job, checkpointed by time, through the one engine.

The unit loads its chunk list (planned once by the plan unit), skips the chunks a part object already
holds (a unit given back resumes after them, each stream from the carry of its last durable chunk),
and hands the rest to `Engine.generate`, which shares the process's batch with every other unit
running in this process. Every kept chunk is counted at once (`UnitStore.progress`: what the job's
progress shows; False means the job stopped) and kept in memory; a background writer rolls what it
holds into one FLAC part every `NARRATE_CHECKPOINT_INTERVAL_SECONDS`, at the end and when the worker
is told to stop, so generation never waits on storage and a crash costs at most one interval of work.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from shared import metrics
from shared.audio.quality import assess_chunk
from shared.audio.trim import trim_silence
from shared.jobs import JobPriority
from shared.lease import LeaseLost
from shared.speech_stream import SpeechChannel, SpeechPiece
from shared.storage import StorageError
from shared.storage_keys import checkpoint_part_key
from shared.units import DurableChunk, UnitClaim
from shared.usage import record_chunk_usage
from worker import checkpoints
from worker.assembly import Mastering
from worker.engines.base import ChunkRequest, ChunkResult
from worker.outcomes import Stopped
from worker.planning import PlannedChunk, chunks_from_json, pause_after
from worker.runtime import Runtime
from worker.voice_embeddings import load_job_voices

log = logging.getLogger(__name__)


class ShuttingDown(Exception):
    """The worker was told to stop: the unit checkpoints what it has and is handed back."""


@dataclass
class _Finished:
    result: ChunkResult
    audio: np.ndarray


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
    buffer: list[_Finished] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)
    _pending: list[Future[None]] = field(default_factory=list)
    _last_roll: float = field(default_factory=time.monotonic)
    _parts: int = 0

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")

    def add(self, finished: _Finished) -> None:
        self.raise_failed()
        self.buffer.append(finished)
        if time.monotonic() - self._last_roll >= self.interval:
            self.roll()

    def roll(self) -> None:
        """Write what the buffer holds as one part (in the background)."""
        self._last_roll = time.monotonic()
        if not self.buffer:
            return
        chunks, self.buffer = self.buffer, []
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
    chunks = chunks_from_json(raw, load_job_voices(spec, claim.tenant, rt))
    writer = PartWriter(rt, claim, rt.settings.checkpoint_interval_seconds)
    try:
        try:
            _generate(claim, rt, chunks, writer, shutting_down)
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
    claim: UnitClaim, rt: Runtime, chunks: list[PlannedChunk], writer: PartWriter, shutting_down: threading.Event
) -> None:
    engine, job_id = rt.engine, claim.job_id
    done = rt.jobs.done_chunks(job_id)
    remaining = [planned for planned in chunks if planned.key not in done]
    if not remaining:
        return
    carry_in: dict[int, bytes] = {}
    by_stream: dict[int, list[PlannedChunk]] = {}
    for planned in chunks:
        by_stream.setdefault(planned.request.stream, []).append(planned)
    for stream, own in by_stream.items():
        first_missing = next((i for i, p in enumerate(own) if p.key not in done), None)
        carry = own[0].carry_in if first_missing == 0 else None  # a pickup: the original's neighbour
        if first_missing:
            carry = done[own[first_missing - 1].key].carry
        if carry is not None:
            carry_in[stream] = carry
    urgent = claim.priority == JobPriority.INTERACTIVE
    requests = [replace(p.request, urgent=True) if urgent else p.request for p in remaining]
    refused: set[str] = set()

    def review(request: ChunkRequest, result: ChunkResult) -> bool:
        # Judged on the untrimmed draw: the check finds the speech inside it itself.
        verdict = assess_chunk(result.audio, engine.sample_rate, expected_seconds=request.expected_seconds)
        if verdict.ok:
            return True
        if request.key in refused:  # kept anyway: a second bad draw is more likely the estimate than the audio
            log.warning("job %s chunk %s: still %s after regenerating; kept", job_id, request.key, verdict.problem)
        else:
            log.warning("job %s chunk %s: %s, regenerating", job_id, request.key, verdict.problem)
            refused.add(request.key)
            metrics.CHUNKS_REDRAWN.inc()
        return False

    listener = _Listener.of(claim, rt, remaining)
    results = engine.generate(requests, carry_in, review)
    try:
        for result in results:
            audio = trim_silence(result.audio, engine.sample_rate)
            seconds = len(audio) / engine.sample_rate
            if not rt.units.progress(claim, seconds=seconds, synth_seconds=result.synth_seconds):
                raise Stopped
            writer.add(_Finished(result, audio))
            if listener is not None:
                listener.publish(result.key, audio)
            metrics.AUDIO_SECONDS.inc(seconds)
            metrics.SYNTHESIS_SECONDS.inc(result.synth_seconds)
            if seconds > 0:
                metrics.CHUNK_RTF.observe(result.synth_seconds / seconds)
            rt.report_gpu_memory()
            if shutting_down.is_set():
                raise ShuttingDown
    finally:
        results.close()  # cancels what is left of this unit's rows; the engine stays usable


@dataclass
class _Listener:
    """A streaming speech request waits for this job's audio (`shared.speech_stream`): every kept chunk
    is published as it is generated, with its place in reading order and the pause after it."""

    channel: SpeechChannel
    job_id: str
    sample_rate: int
    chunks: dict[str, tuple[int, int]]
    """chunk key -> (index in reading order, pause after it in ms)"""

    @classmethod
    def of(cls, claim: UnitClaim, rt: Runtime, remaining: list[PlannedChunk]) -> _Listener | None:
        channel = SpeechChannel(rt.services.redis, rt.settings.key_prefix)
        try:
            if not channel.is_open(claim.job_id):
                return None
        except Exception as exc:  # Redis down: the unit fails on its next store call, not here
            log.warning("job %s: could not look for a speech stream (%s)", claim.job_id, exc)
            return None
        pauses = Mastering.from_settings(rt.settings).pauses
        chunks = {p.key: (p.chunk.index, pause_after(p.chunk.boundary, pauses)) for p in remaining}
        return cls(channel, claim.job_id, rt.engine.sample_rate, chunks)

    def publish(self, key: str, audio: np.ndarray) -> None:
        index, pause_ms = self.chunks[key]
        try:
            self.channel.publish(self.job_id, SpeechPiece(index, audio, self.sample_rate, pause_ms))
        except Exception as exc:  # the stream is a courtesy: the job's file does not depend on it
            log.warning("job %s: could not publish chunk %s to its speech stream (%s)", self.job_id, key, exc)
