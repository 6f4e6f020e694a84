import numpy as np
import pytest

from shared.audio.trim import trim_silence
from tests.shared.audio.signals import silence, speechlike, tone

SR = 22050


def test_removes_leading_and_trailing_silence_keeping_the_margin():
    speech = tone(1.0, SR)
    audio = np.concatenate([silence(0.5, SR), speech, silence(0.7, SR)])
    trimmed = trim_silence(audio, SR, keep_ms=40)
    # The tone plus about 40 ms each side (window granularity: a few ms).
    assert trimmed.shape[0] / SR == pytest.approx(1.0 + 0.08, abs=0.015)
    assert np.count_nonzero(trimmed) == np.count_nonzero(speech)  # nothing of the tone lost
    assert trimmed[:800].max() == 0 and trimmed[-800:].max() == 0  # margins are the silence around it


def test_soft_last_word_below_threshold_is_kept():
    """A fading tail at -50 dBFS (under the -45 threshold) right after loud speech is not cut."""
    loud = tone(0.5, SR, amp=0.3)
    soft_tail = tone(0.15, SR, amp=10 ** (-50 / 20) * np.sqrt(2), freq=3000)  # RMS -50 dBFS
    audio = np.concatenate([silence(0.3, SR), loud, soft_tail, silence(0.5, SR)])
    trimmed = trim_silence(audio, SR, keep_ms=40)
    assert trimmed.shape[0] / SR >= 0.5 + 0.15 + 0.03


def test_single_sample_spike_in_silence_is_not_speech():
    audio = silence(1.0, SR)
    audio[100] = 0.2  # a lone 0.2 sample (-14 dBFS) averages to -37 dBFS over a 10 ms window
    audio[5000] = 0.05
    trimmed = trim_silence(audio, SR, threshold_db=-30.0)
    assert trimmed.shape[0] == 0


def test_all_silence_and_empty_input_give_empty_output():
    assert trim_silence(silence(2.0, SR), SR).shape[0] == 0
    assert trim_silence(np.zeros(0, dtype=np.float32), SR).shape[0] == 0


def test_audio_without_silence_is_unchanged_and_dtype_kept():
    audio = speechlike(2.0, SR)
    audio[:200] = 0.2  # loud right from the first sample
    audio[-200:] = 0.2
    trimmed = trim_silence(audio, SR)
    assert trimmed.dtype == np.float32
    np.testing.assert_array_equal(trimmed, audio)


def test_rejects_multichannel():
    with pytest.raises(ValueError):
        trim_silence(np.zeros((100, 2), dtype=np.float32), SR)
