"""`shared.audio.fit`: which status and stretch a timed line gets, and the stretch's exact length."""

from __future__ import annotations

import numpy as np
import pytest

from shared.audio.fit import FitBounds, plan_fit, stretch
from shared.jobs import FitStatus, JobInput
from shared.text.dialogue import Turn, parse_speaker_tags

pytestmark = pytest.mark.fast
BOUNDS = FitBounds(0.8, 1.25)


def line(**fields: float) -> JobInput:
    return JobInput.model_validate({"text": "A line.", **fields})


@pytest.mark.parametrize(
    ("fields", "speech", "status", "ratio"),
    [
        ({"target_seconds": 2.2}, 2.0, FitStatus.FITTED, 1.0),  # 2.0 s of speech + 0.2 s of padding
        ({"target_seconds": 1.8}, 2.0, FitStatus.FITTED, 0.8),
        ({"target_seconds": 2.7}, 2.0, FitStatus.FITTED, 1.25),
        ({"target_seconds": 1.0}, 2.0, FitStatus.OVER_LIMIT, 0.8),  # stretched as far as allowed, not cut
        ({"target_seconds": 4.0}, 2.0, FitStatus.OVER_LIMIT, 1.25),
        ({"max_seconds": 3.0}, 2.0, FitStatus.WITHIN, 1.0),
        ({"max_seconds": 2.0}, 2.0, FitStatus.FITTED, 0.9),
        ({"max_seconds": 1.0}, 2.0, FitStatus.OVER_LIMIT, 0.8),
        ({"target_seconds": 2.2, "speed": 2.0}, 4.0, FitStatus.FITTED, 1.0),  # speed first, then the fit
    ],
)
def test_a_line_is_fitted_within_the_bounds_and_over_limit_beyond(fields, speech, status, ratio):
    fit = plan_fit(line(**fields), speech, 0.2, BOUNDS)
    assert (fit.status, fit.ratio) == (status, pytest.approx(ratio))
    assert fit.stretch == pytest.approx(fit.ratio / fields.get("speed", 1.0))


def test_speed_alone_stretches_without_a_fit():
    fit = plan_fit(line(speed=1.25), 2.0, 0.0, BOUNDS)
    assert (fit.status, fit.stretch) == (None, pytest.approx(0.8))


def test_the_stretch_has_exactly_the_asked_length_and_keeps_the_pitch():
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(2 * sr) / sr)).astype(np.float32)
    for ratio in (0.8, 1.25):
        out = stretch(tone, sr, ratio)
        assert out.size == round(tone.size * ratio)
        middle = out[out.size // 4 : 3 * out.size // 4]
        peak = np.argmax(np.abs(np.fft.rfft(middle))) * sr / middle.size
        assert abs(peak - 200) < 5


def test_speaker_tags_split_turns_at_line_starts():
    text = "Before.\n[Ana] Hi there.\n  [Bo O'Neil]  Yo.\n[Ana]\nnot [Bo] a tag."
    turns = parse_speaker_tags(text)
    assert [(t.speaker, t.text) for t in turns] == [
        (None, "Before."),
        ("Ana", "Hi there."),
        ("Bo O'Neil", "Yo."),
        ("Ana", "not [Bo] a tag."),
    ]
    assert all(text[t.start : t.start + len(t.text)] == t.text for t in turns)  # offsets into the input
    assert parse_speaker_tags("No tags [here].") == [Turn(None, "No tags [here].", 0)]
