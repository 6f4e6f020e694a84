"""Speed changes by time-stretching (pitch kept), with FFmpeg's `atempo` filter through PyAV.

Resampling would change the pitch with the speed; `atempo` (WSOLA) keeps it, and PyAV is already how
the encoder reaches FFmpeg, so no other library is needed. One `atempo` instance takes 0.5-2.0 in every
FFmpeg release, so larger changes are chained (0.25 = 0.5 x 0.5).
"""

from __future__ import annotations

import av.filter
import numpy as np
from av.error import BlockingIOError as NotYet
from av.error import EOFError as Drained

MIN_SPEED = 0.25
MAX_SPEED = 4.0


def _factors(speed: float) -> list[float]:
    factors: list[float] = []
    while speed < 0.5:
        factors.append(0.5)
        speed /= 0.5
    while speed > 2.0:
        factors.append(2.0)
        speed /= 2.0
    factors.append(speed)
    return factors


class Tempo:
    """A time-stretch that audio is pushed through piece by piece (a stream): one filter graph keeps its
    state across pieces, so the joins are as smooth as inside a piece."""

    def __init__(self, sr: int, speed: float) -> None:
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
        self.sr = sr
        self._graph = av.filter.Graph()
        self._source = node = self._graph.add_abuffer(format="flt", sample_rate=sr, layout="mono")
        for factor in _factors(speed):
            stage = self._graph.add("atempo", f"{factor:.6f}")
            node.link_to(stage)
            node = stage
        self._sink = self._graph.add("abuffersink")
        node.link_to(self._sink)
        self._graph.configure()
        self._pts = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """What is ready of the stretched audio after `audio` (some of it comes with the next push)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.size:
            frame = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
            frame.sample_rate = self.sr
            frame.pts = self._pts
            self._pts += audio.size
            self._source.push(frame)
        return self._pull()

    def finish(self) -> np.ndarray:
        """The rest, once no more audio comes."""
        self._source.push(None)
        return self._pull()

    def _pull(self) -> np.ndarray:
        out: list[np.ndarray] = []
        while True:
            try:
                pulled = self._sink.pull()
            except (NotYet, Drained):
                break
            assert isinstance(pulled, av.AudioFrame)  # an audio graph yields audio frames
            out.append(pulled.to_ndarray().reshape(-1))
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def change_speed(audio: np.ndarray, sr: int, speed: float) -> np.ndarray:
    """`audio` played `speed` times as fast at the same pitch (mono float32 in, mono float32 out)."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if speed == 1.0 or audio.size == 0:
        return audio
    tempo = Tempo(sr, speed)
    return np.concatenate([tempo.push(audio), tempo.finish()])
