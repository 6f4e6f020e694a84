import numpy as np
import pytest

from shared.audio.quality import ChunkAssessment, assess_chunk
from tests.shared.audio.signals import silence, speechlike

SR = 22050


def _chunk(seconds: float, *, pad: float = 0.3) -> np.ndarray:
    return np.concatenate([silence(pad, SR), speechlike(seconds, SR), silence(pad, SR)])


def test_chunk_of_expected_length_is_ok_and_silence_padding_is_not_counted():
    result = assess_chunk(_chunk(10.0, pad=1.0), SR, expected_seconds=10.0)
    assert result.ok and result.problem is None
    assert result.duration_seconds == pytest.approx(12.0, abs=0.01)
    assert result.speech_seconds == pytest.approx(10.0, abs=0.25)  # envelope gaps at the ends
    assert result.ratio == pytest.approx(1.0, abs=0.03)
    assert result.longest_silence_seconds < 0.3  # only the gaps between "syllables"


def test_truncated_chunk_is_flagged():
    result = assess_chunk(_chunk(4.0), SR, expected_seconds=20.0)
    assert not result.ok and result.problem == "truncated"
    assert result.ratio == pytest.approx(0.2, abs=0.02)


def test_runaway_chunk_is_flagged():
    result = assess_chunk(_chunk(30.0), SR, expected_seconds=10.0)
    assert (result.ok, result.problem) == (False, "runaway")


def test_long_internal_silence_is_flagged_with_its_length():
    audio = np.concatenate([speechlike(4.0, SR), silence(3.0, SR), speechlike(4.0, SR, seed=1)])
    result = assess_chunk(audio, SR, expected_seconds=10.0)
    assert result.problem == "long_silence"
    assert result.longest_silence_seconds == pytest.approx(3.0, abs=0.3)
    relaxed = assess_chunk(audio, SR, expected_seconds=10.0, max_silence_seconds=4.0)
    assert relaxed.ok


def test_silent_chunk():
    result = assess_chunk(silence(5.0, SR), SR, expected_seconds=5.0)
    assert (result.ok, result.problem, result.speech_seconds) == (False, "silent", 0.0)
    assert assess_chunk(np.zeros(0, dtype=np.float32), SR, expected_seconds=1.0).problem == "silent"


def test_short_lines_get_absolute_slack():
    """A one-word line estimated at 0.4 s that came out 1.1 s is normal variation, not a runaway."""
    assert assess_chunk(_chunk(1.1), SR, expected_seconds=0.4).ok
    assert assess_chunk(_chunk(1.1), SR, expected_seconds=0.4, slack_seconds=0.0).problem == "runaway"


def test_thresholds_are_configurable():
    audio = _chunk(7.0)
    assert assess_chunk(audio, SR, expected_seconds=10.0).ok
    tight = assess_chunk(audio, SR, expected_seconds=10.0, min_ratio=0.9, slack_seconds=0.0)
    assert tight.problem == "truncated"


def test_assessment_is_frozen():
    result = assess_chunk(_chunk(1.0), SR, expected_seconds=1.0)
    assert isinstance(result, ChunkAssessment)
    with pytest.raises(AttributeError):
        result.ok = False  # type: ignore[misc]
