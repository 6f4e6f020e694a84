"""Audio that does not fit in memory: mono float32 samples spilled to a temporary file, read in blocks.

A 40-hour book at 44.1 kHz is 25 GB of float32 samples, so a whole-book file is never one array: its
chapters are mastered one by one and appended here, and the encoder reads it back block by block.
`Samples` is what the encoder reads (this file, or an array in memory through `ArraySamples`).
"""

from __future__ import annotations

import tempfile
from typing import Protocol

import numpy as np

from shared.audio.levels import as_mono_float32

_WRITE_BLOCK = 1 << 20


class Samples(Protocol):
    """Mono float32 samples read by range."""

    def __len__(self) -> int: ...

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples `[start, stop)` as a float32 array (clipped to the length)."""
        ...


class ArraySamples:
    """An array in memory as `Samples` (a view: nothing is copied)."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = as_mono_float32(audio)

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[start:stop]


class PcmFile:
    """Samples appended to an anonymous temporary file (deleted when closed or collected)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="narrate-pcm-")  # noqa: SIM115 - closed by close()
        self._samples = 0

    def __len__(self) -> int:
        return self._samples

    def append(self, audio: np.ndarray) -> None:
        audio = np.ascontiguousarray(as_mono_float32(audio))
        self._file.seek(0, 2)
        for begin in range(0, audio.shape[0], _WRITE_BLOCK):
            audio[begin : begin + _WRITE_BLOCK].tofile(self._file)
        self._samples += int(audio.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, self._samples)
        if stop <= start:
            return np.zeros(0, np.float32)
        self._file.seek(start * 4)
        return np.frombuffer(self._file.read((stop - start) * 4), dtype=np.float32).copy()

    def to_array(self) -> np.ndarray:
        """All samples at once (for short files and tests)."""
        return self.read(0, self._samples)

    def close(self) -> None:
        self._file.close()
