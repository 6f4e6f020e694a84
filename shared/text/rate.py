"""Speaking rate learned from measured chunk durations, to size chunks for each engine and language.

An exponential moving average of characters per second, starting from a prior that counts as one
measurement (so the first few chunks move it quickly), with every observation clamped to plausible
bounds so one broken chunk (silence, a runaway generation) cannot wreck the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CHARS_PER_SECOND = 14.0
"""The speech rate assumed before anything was measured (the default of `NARRATE_CHARS_PER_SECOND`)."""
MIN_CHARS_PER_SECOND = 5.0
MAX_CHARS_PER_SECOND = 40.0
DEFAULT_SMOOTHING = 0.1
MIN_MEASURED_SECONDS = 0.2


@dataclass
class SpeechRate:
    prior: float = DEFAULT_CHARS_PER_SECOND
    smoothing: float = DEFAULT_SMOOTHING
    """Weight of a new measurement once the average has settled."""
    samples: int = 0
    _value: float = field(default=math.nan, repr=False)

    def __post_init__(self) -> None:
        self.prior = _clamp(self.prior) if math.isfinite(self.prior) else DEFAULT_CHARS_PER_SECOND
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], not {self.smoothing}")
        if not math.isfinite(self._value):
            self._value = self.prior

    @property
    def chars_per_second(self) -> float:
        return self._value

    def update(self, chars: int, seconds: float) -> float:
        """Fold in one chunk: ``chars`` characters of text spoken in ``seconds``. Returns the new rate.

        Measurements that say nothing (no text, under 0.2 s, not finite) are ignored.
        """
        if chars <= 0 or not math.isfinite(seconds) or seconds < MIN_MEASURED_SECONDS:
            return self._value
        observed = _clamp(chars / seconds)
        weight = max(self.smoothing, 1.0 / (self.samples + 2))
        self._value += weight * (observed - self._value)
        self.samples += 1
        return self._value

    def seconds_for(self, chars: int) -> float:
        return chars / self._value

    def to_dict(self) -> dict[str, float | int]:
        return {
            "chars_per_second": self._value,
            "samples": self.samples,
            "prior": self.prior,
            "smoothing": self.smoothing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SpeechRate:
        """Rebuild from ``to_dict()``; missing or corrupt fields fall back to defaults (never raises)."""
        data = data or {}
        prior = _number(data.get("prior"), DEFAULT_CHARS_PER_SECOND)
        smoothing = _number(data.get("smoothing"), DEFAULT_SMOOTHING)
        if not 0 < smoothing <= 1:
            smoothing = DEFAULT_SMOOTHING
        samples = max(0, int(_number(data.get("samples"), 0)))
        value = _number(data.get("chars_per_second"), math.nan)
        return cls(
            prior=prior,
            smoothing=smoothing,
            samples=samples,
            _value=_clamp(value) if math.isfinite(value) else math.nan,
        )


def _clamp(value: float) -> float:
    return min(MAX_CHARS_PER_SECOND, max(MIN_CHARS_PER_SECOND, value))


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default
