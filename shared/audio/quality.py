"""Spot generated chunks worth regenerating: cut short, run on, or stalled in silence.

An autoregressive TTS model sometimes stops early (the last words are missing), fails to stop (it
babbles or repeats past the text), or stalls in a long silence mid-chunk. The text predicts roughly
how long the chunk should be, so the measured duration against that estimate, plus the longest pause
inside the speech, catch all three cheaply, before the chunk is stitched into an hour of audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.audio.levels import active_bounds, as_mono_float32, frame_levels
from shared.audio.trim import HYSTERESIS_DB


@dataclass(frozen=True)
class ChunkAssessment:
    ok: bool
    problem: str | None
    """None when ok, else one of "silent", "truncated", "runaway", "long_silence"."""
    duration_seconds: float
    """Length of the audio as given."""
    speech_seconds: float
    """From the first to the last sound (leading and trailing silence excluded)."""
    longest_silence_seconds: float
    """Longest pause between the first and the last sound."""
    ratio: float
    """`speech_seconds / expected_seconds` (inf when nothing was expected)."""


def assess_chunk(
    audio: np.ndarray,
    sr: int,
    *,
    expected_seconds: float,
    min_ratio: float = 0.5,
    max_ratio: float = 2.0,
    slack_seconds: float = 1.0,
    max_silence_seconds: float = 2.0,
    threshold_db: float = -45.0,
) -> ChunkAssessment:
    """Judge one chunk against the duration its text predicts.

    Truncated: speech shorter than `expected_seconds * min_ratio - slack_seconds`; runaway: longer than
    `expected_seconds * max_ratio + slack_seconds`. The absolute slack keeps short lines, whose
    estimate is least reliable, from being flagged for natural variation. Long silence: an internal
    pause (20 ms RMS windows below `threshold_db` dBFS) over `max_silence_seconds`. Silent: nothing
    reaches `threshold_db`. Checked in that order: silent, truncated, runaway, long_silence.
    """
    audio = as_mono_float32(audio)
    duration = audio.shape[0] / sr
    levels = frame_levels(audio, sr, window_ms=20.0, hop_ms=10.0)
    bounds = active_bounds(levels, threshold_db=threshold_db, hysteresis_db=HYSTERESIS_DB)
    if bounds is None:
        ratio = 0.0 if expected_seconds > 0 else float("nan")
        return ChunkAssessment(False, "silent", duration, 0.0, 0.0, ratio)

    start, end = bounds
    speech = (end - start) / sr
    ratio = speech / expected_seconds if expected_seconds > 0 else float("inf")
    inside = (levels.starts >= start) & (levels.starts + levels.window <= end)
    longest = _longest_run(levels.db[inside] < threshold_db)
    # k consecutive quiet windows cover (k - 1) hops plus one window of audio.
    longest_silence = 0.0 if longest == 0 else ((longest - 1) * levels.hop + levels.window) / sr

    problem: str | None = None
    if speech < expected_seconds * min_ratio - slack_seconds:
        problem = "truncated"
    elif speech > expected_seconds * max_ratio + slack_seconds:
        problem = "runaway"
    elif longest_silence > max_silence_seconds:
        problem = "long_silence"
    return ChunkAssessment(problem is None, problem, duration, speech, longest_silence, ratio)


def _longest_run(flags: np.ndarray) -> int:
    if not flags.any():
        return 0
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max())
