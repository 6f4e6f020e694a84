"""The audio of a streaming speech request, from the worker that speaks it to the API that sends it.

The API opens a channel for a job before queueing it; a speak unit that finds it open publishes every
chunk it keeps, in generation order, to a Redis stream of that job (bounded, expiring with the
marker), with the chunk's place in the text and the pause that follows it. The API reads the stream,
puts the chunks back in reading order, brings them to the job's level (`StreamLevel`) and encodes
them as one continuous stream. Nothing here is needed for the job itself: its file is assembled and
mastered as for any job, and a lost entry only costs the stream (the API then ends it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import redis

from shared.audio.loudness import integrated_loudness
from shared.audio.mastering import rms_dbfs
from shared.audio.presets import MasteringTargets
from shared.audio.true_peak import limit_true_peak_in_place

CHANNEL_SECONDS = 3600
"""How long a channel and its audio are kept at most (a request waits far less)."""
MAX_ENTRIES = 4096
"""Most chunks a stream keeps (4,096 characters are a few hundred chunks at most)."""
MAX_STREAM_GAIN_DB = 20.0
"""Most a streamed response is raised or lowered: a first piece that is nearly silent sets no wild gain."""


@dataclass(frozen=True)
class SpeechPiece:
    index: int
    """The chunk's place in reading order (0, 1, ...)."""
    audio: np.ndarray
    """Mono float32 at `sample_rate`, silence trimmed as the job's file has it."""
    sample_rate: int
    pause_ms: int
    """Silence that follows the chunk in the job's file (none after the last)."""


class SpeechChannel:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _stream(self, job_id: str) -> str:
        return f"{self._prefix}:speech:{job_id}"

    def _marker(self, job_id: str) -> str:
        return f"{self._prefix}:speech:{job_id}:open"

    def open(self, job_id: str) -> None:
        self._redis.set(self._marker(job_id), 1, ex=CHANNEL_SECONDS)

    def is_open(self, job_id: str) -> bool:
        return bool(self._redis.exists(self._marker(job_id)))

    def close(self, job_id: str) -> None:
        self._redis.delete(self._marker(job_id), self._stream(job_id))

    def publish(self, job_id: str, piece: SpeechPiece) -> None:
        samples = (np.clip(piece.audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
        fields: dict[str, str | int | bytes] = {
            "index": piece.index, "rate": piece.sample_rate, "pause": piece.pause_ms, "pcm": samples,
        }  # fmt: skip
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._stream(job_id), fields, maxlen=MAX_ENTRIES, approximate=True)  # pyright: ignore[reportArgumentType]
            pipe.expire(self._stream(job_id), CHANNEL_SECONDS)
            pipe.execute()

    def read(self, job_id: str, after: str, *, block_ms: int) -> tuple[str, list[SpeechPiece]]:
        """Pieces published after entry `after` ("0" for all), waiting up to `block_ms` for the first;
        returns the last entry id read (to pass next time) and the pieces."""
        answer = self._redis.xread({self._stream(job_id): after}, block=block_ms, count=64)
        pieces: list[SpeechPiece] = []
        for _, entries in answer or []:  # pyright: ignore[reportGeneralTypeIssues]
            for entry_id, fields in entries:
                after = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                pieces.append(
                    SpeechPiece(
                        index=int(fields[b"index"]),
                        audio=np.frombuffer(fields[b"pcm"], "<i2").astype(np.float32) / 32767.0,
                        sample_rate=int(fields[b"rate"]),
                        pause_ms=int(fields[b"pause"]),
                    )
                )
        return after, pieces


class StreamLevel:
    """One gain for a whole streamed response: what brings the first piece with speech in it to the job's
    level target (its integrated loudness, or RMS for a preset that aims at RMS), then held for every
    later piece, so that the level never steps at a seam as a gain measured per piece would. The file
    is mastered on the whole chapter; a stream cannot wait for that, so its level is this estimate.
    Peaks the held gain pushes over the job's true-peak ceiling are limited within their piece (whose
    edges, trimmed of silence, are quiet)."""

    def __init__(self, sample_rate: int, targets: MasteringTargets) -> None:
        self.sample_rate = sample_rate
        self.targets = targets
        self.gain: float | None = None
        """Linear gain, fixed by the first piece with speech (None before it)."""

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if self.gain is None:
            self.gain = self._estimate(audio)
        if self.gain is None:
            return audio  # silence so far: nothing to measure, nothing to raise
        out = np.asarray(audio, dtype=np.float32) * np.float32(self.gain)
        if out.shape[0]:
            limit_true_peak_in_place(
                out, self.sample_rate, self.targets.true_peak_dbfs - self.targets.limiter_margin_db
            )
        return out

    def _estimate(self, audio: np.ndarray) -> float | None:
        if self.targets.rms_db is not None:
            level, target = rms_dbfs(audio), self.targets.rms_db
        else:
            assert self.targets.loudness_lufs is not None
            level, target = integrated_loudness(audio, self.sample_rate), self.targets.loudness_lufs
        if not np.isfinite(level) or level < -70.0:
            return None
        return float(10.0 ** (np.clip(target - level, -MAX_STREAM_GAIN_DB, MAX_STREAM_GAIN_DB) / 20.0))
