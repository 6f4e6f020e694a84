"""Speech rate learning: converges on what the engine really does, resists junk, survives Redis."""

from __future__ import annotations

import json
import math

import pytest

from shared.text.rate import DEFAULT_CHARS_PER_SECOND, MAX_CHARS_PER_SECOND, MIN_CHARS_PER_SECOND, SpeechRate


def test_starts_at_the_prior() -> None:
    assert SpeechRate().chars_per_second == DEFAULT_CHARS_PER_SECOND
    assert SpeechRate(prior=12.0).chars_per_second == 12.0


def test_converges_to_the_measured_rate() -> None:
    rate = SpeechRate()
    rate.update(180, 10.0)
    assert 14.0 < rate.chars_per_second < 18.0  # the first measurement moves it half-way
    for _ in range(60):
        rate.update(360, 20.0)
    assert rate.chars_per_second == pytest.approx(18.0, rel=0.01)
    assert rate.samples == 61
    assert rate.seconds_for(180) == pytest.approx(10.0, rel=0.01)


def test_one_bad_chunk_cannot_wreck_it() -> None:
    rate = SpeechRate()
    for _ in range(30):
        rate.update(150, 10.0)
    rate.update(150, 1000.0)  # runaway generation
    assert rate.chars_per_second > 13.0
    rate.update(1000, 1.0)  # truncated audio
    assert rate.chars_per_second < 18.0


@pytest.mark.parametrize(
    ("chars", "seconds"), [(0, 5.0), (-3, 5.0), (100, 0.0), (100, -1.0), (100, math.nan), (100, math.inf)]
)
def test_ignores_meaningless_measurements(chars: int, seconds: float) -> None:
    rate = SpeechRate()
    assert rate.update(chars, seconds) == DEFAULT_CHARS_PER_SECOND
    assert rate.samples == 0


def test_stays_within_bounds() -> None:
    fast, slow = SpeechRate(), SpeechRate()
    for _ in range(200):
        fast.update(10_000, 1.0)
        slow.update(1, 100.0)
    assert fast.chars_per_second == pytest.approx(MAX_CHARS_PER_SECOND)
    assert slow.chars_per_second == pytest.approx(MIN_CHARS_PER_SECOND)


def test_round_trips_through_json() -> None:
    rate = SpeechRate(prior=13.0, smoothing=0.2)
    rate.update(200, 12.0)
    rate.update(150, 9.5)
    restored = SpeechRate.from_dict(json.loads(json.dumps(rate.to_dict())))
    assert restored.to_dict() == rate.to_dict()
    assert restored.update(100, 6.0) == rate.update(100, 6.0)


@pytest.mark.parametrize(
    "data",
    [None, {}, {"chars_per_second": "fast"}, {"chars_per_second": math.nan, "samples": -4}, {"smoothing": 7}],
)
def test_corrupt_stored_state_falls_back_to_defaults(data: dict | None) -> None:
    rate = SpeechRate.from_dict(data)
    assert rate.chars_per_second == DEFAULT_CHARS_PER_SECOND
    assert rate.samples == 0
    assert 0 < rate.smoothing <= 1


def test_stored_rate_out_of_bounds_is_clamped() -> None:
    assert SpeechRate.from_dict({"chars_per_second": 500.0}).chars_per_second == MAX_CHARS_PER_SECOND
