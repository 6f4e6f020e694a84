"""Trim leading and trailing silence of a generated chunk without clipping soft word edges."""

from __future__ import annotations

import numpy as np

from shared.audio.levels import active_bounds, as_mono_float32, frame_levels

HYSTERESIS_DB = 12.0
"""How far below the threshold a word's fading edge may go and still be kept."""


def trim_silence(audio: np.ndarray, sr: int, *, threshold_db: float = -45.0, keep_ms: float = 40) -> np.ndarray:
    """Cut silence at both ends, keeping `keep_ms` of margin around the sound.

    Sound is found on 10 ms RMS windows (hop 5 ms) in dBFS: it must reach `threshold_db`, and its edges
    extend while the level stays within `HYSTERESIS_DB` below that, so a whispered last syllable is not
    cut. Audio with no window at the threshold is all silence and comes back empty (length 0).
    Returns a view of the input (no copy).
    """
    audio = as_mono_float32(audio)
    bounds = sound_bounds(audio, sr, threshold_db=threshold_db)
    if bounds is None:
        return audio[:0]
    keep = round(sr * keep_ms / 1000.0)
    start, end = bounds
    return audio[max(0, start - keep) : min(audio.shape[0], end + keep)]


def sound_bounds(audio: np.ndarray, sr: int, *, threshold_db: float = -45.0) -> tuple[int, int] | None:
    """`[start, end)` samples of the sound in `audio` as `trim_silence` finds it; None for silence."""
    levels = frame_levels(as_mono_float32(audio), sr, window_ms=10.0, hop_ms=5.0)
    return active_bounds(levels, threshold_db=threshold_db, hysteresis_db=HYSTERESIS_DB)
