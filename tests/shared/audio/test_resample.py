import numpy as np
import pytest

from shared.audio.resample import resample
from tests.shared.audio.signals import tone


@pytest.mark.parametrize(("sr_in", "sr_out"), [(22050, 48000), (24000, 16000), (48000, 22050)])
def test_resampled_tone_keeps_length_frequency_and_level(sr_in, sr_out):
    audio = tone(2.0, sr_in, freq=440.0, amp=0.5)
    out = resample(audio, sr_in, sr_out)
    assert out.dtype == np.float32
    assert out.shape[0] == pytest.approx(2.0 * sr_out, abs=2)
    expected = tone(2.0, sr_out, freq=440.0, amp=0.5)[: out.shape[0]]
    middle = slice(sr_out // 10, -sr_out // 10)
    assert np.corrcoef(out[middle], expected[middle])[0, 1] > 0.999


def test_content_above_the_new_nyquist_is_removed_not_aliased():
    audio = tone(1.0, 48000, freq=15000.0, amp=0.5)
    out = resample(audio, 48000, 22050)
    assert np.sqrt(np.mean(out[2000:-2000] ** 2)) < 0.005


def test_same_rate_returns_input():
    audio = tone(0.1, 22050)
    assert resample(audio, 22050, 22050) is audio
