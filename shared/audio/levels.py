"""Short-window signal levels shared by silence trimming and chunk quality checks.

Decisions about "is there speech here" are made on RMS over a few milliseconds, never on single
samples: a lone sample of a soft consonant can be near zero while the sound is clearly audible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FLOOR_DB = -200.0


def as_mono_float32(audio: np.ndarray) -> np.ndarray:
    """The contract's sample format (1-D float32); raises on anything that is not mono."""
    array = np.asarray(audio)
    if array.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


@dataclass(frozen=True)
class FrameLevels:
    """RMS level in dBFS of overlapping windows; window `i` covers `[starts[i], starts[i] + window)`."""

    db: np.ndarray
    starts: np.ndarray
    window: int
    hop: int


def frame_levels(audio: np.ndarray, sr: int, *, window_ms: float = 10.0, hop_ms: float = 5.0) -> FrameLevels:
    """RMS per window from a running sum of squares: O(n), no per-frame Python loop."""
    audio = as_mono_float32(audio)
    window = max(1, round(sr * window_ms / 1000.0))
    hop = max(1, round(sr * hop_ms / 1000.0))
    n = audio.shape[0]
    if n == 0:
        return FrameLevels(np.empty(0), np.empty(0, dtype=np.int64), window, hop)
    window = min(window, n)
    starts = np.arange(0, n - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < n:  # cover the tail, too
        starts = np.append(starts, n - window)
    cumulative = np.zeros(n + 1, dtype=np.float64)
    np.cumsum(np.square(audio, dtype=np.float64), out=cumulative[1:])
    mean_square = (cumulative[starts + window] - cumulative[starts]) / window
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(np.maximum(mean_square, 0.0))
    return FrameLevels(np.maximum(db, _FLOOR_DB), starts, window, hop)


def active_bounds(levels: FrameLevels, *, threshold_db: float, hysteresis_db: float) -> tuple[int, int] | None:
    """Sample range from the first to the last sound, or None when nothing reaches `threshold_db`.

    Sound must reach `threshold_db` to count, but once found the range is widened outwards while the
    level stays above `threshold_db - hysteresis_db`, so the soft onset of a first word and the fading
    tail of a last one (breath, fricative, decay) stay inside.
    """
    loud = np.flatnonzero(levels.db >= threshold_db)
    if loud.size == 0:
        return None
    quiet = levels.db < threshold_db - hysteresis_db
    first, last = int(loud[0]), int(loud[-1])
    before = np.flatnonzero(quiet[:first])
    first = int(before[-1]) + 1 if before.size else 0
    after = np.flatnonzero(quiet[last + 1 :])
    last = last + int(after[0]) if after.size else levels.db.shape[0] - 1
    return int(levels.starts[first]), int(levels.starts[last]) + levels.window
