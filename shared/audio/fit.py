"""Timed lines: fit a generated line to its time slot by time-stretching, within bounds.

A line with `target_seconds` is stretched (Rubber Band through pedalboard, pitch and formants kept) to
the target when the ratio it needs lies within the service's bounds (`NARRATE_FIT_MIN_RATIO`..
`NARRATE_FIT_MAX_RATIO`); a line with `max_seconds` only when it is longer. A line whose ratio would
pass the bounds is redrawn by the speak unit, and when no draw fits it is stretched as far as the
bounds allow and reported `over_limit` with its measured duration: never cut to size. `speed` is the
caller's own rate change, applied in the same stretch and not bounded by the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.jobs import FitStatus, JobInput

FIT_TOLERANCE = 0.005
"""A line this close to its target (as a share) counts as fitted without a stretch."""


@dataclass(frozen=True)
class FitBounds:
    min_ratio: float
    """Shortest output as a share of the generated duration (0.8: up to 25 % faster)."""
    max_ratio: float

    def within(self, ratio: float) -> bool:
        return self.min_ratio - 1e-9 <= ratio <= self.max_ratio + 1e-9

    def clamp(self, ratio: float) -> float:
        return min(self.max_ratio, max(self.min_ratio, ratio))


@dataclass(frozen=True)
class FitPlan:
    """What to do with one draw of a line: its status and the stretch (output / input length) of its
    speech, the caller's `speed` included."""

    status: FitStatus | None
    """None: the line has no target or maximum (only `speed`)."""
    ratio: float
    """The fit's own ratio (1.0: none), within the bounds."""
    stretch: float
    """Output / input length of the speech: the fit's ratio over the caller's speed."""
    target_seconds: float | None


def plan_fit(item: JobInput, speech_seconds: float, padding_seconds: float, bounds: FitBounds) -> FitPlan:
    """The fit of a line whose speech lasts `speech_seconds` as generated, with `padding_seconds` of
    head and tail around it in its file."""
    speed = item.speed or 1.0
    spoken = speech_seconds / speed
    line = spoken + padding_seconds
    if item.target_seconds is None and item.max_seconds is None:
        return FitPlan(None, 1.0, 1.0 / speed, None)
    if item.max_seconds is not None and line <= item.max_seconds:
        return FitPlan(FitStatus.WITHIN, 1.0, 1.0 / speed, item.max_seconds)
    target = item.target_seconds if item.target_seconds is not None else item.max_seconds
    assert target is not None
    if spoken <= 0:
        return FitPlan(FitStatus.OVER_LIMIT, 1.0, 1.0 / speed, target)
    wanted = (target - padding_seconds) / spoken
    if abs(wanted - 1.0) <= FIT_TOLERANCE:
        return FitPlan(FitStatus.FITTED, 1.0, 1.0 / speed, target)
    if wanted > 0 and bounds.within(wanted):
        return FitPlan(FitStatus.FITTED, wanted, wanted / speed, target)
    ratio = bounds.clamp(wanted)
    return FitPlan(FitStatus.OVER_LIMIT, ratio, ratio / speed, target)


def miss(plan: FitPlan, item: JobInput, speech_seconds: float, padding_seconds: float) -> float:
    """How far a draw's fit is from its slot (0 when it fits): which of several draws to keep."""
    if plan.status is not FitStatus.OVER_LIMIT or plan.target_seconds is None:
        return 0.0
    line = speech_seconds / (item.speed or 1.0) * plan.ratio + padding_seconds
    return abs(line - plan.target_seconds)


def stretch(audio: np.ndarray, sr: int, ratio: float) -> np.ndarray:
    """`audio` made `ratio` times as long (pitch and formants kept), with Rubber Band's high-quality
    mode; the output has exactly `round(len(audio) * ratio)` samples."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if ratio == 1.0 or audio.size == 0:
        return audio
    from pedalboard import time_stretch  # a native extension: loaded where lines are fitted only

    out = time_stretch(audio[None, :], float(sr), stretch_factor=1.0 / ratio, preserve_formants=True)
    out = np.asarray(out, dtype=np.float32).reshape(-1)
    length = round(audio.size * ratio)
    if out.size >= length:
        return np.ascontiguousarray(out[:length])
    return np.concatenate([out, np.zeros(length - out.size, np.float32)])
