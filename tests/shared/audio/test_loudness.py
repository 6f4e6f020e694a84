import numpy as np
import pyloudnorm
import pytest

from shared.audio.loudness import integrated_loudness, normalize_loudness
from tests.shared.audio.signals import silence, speechlike, tone

SR = 22050


@pytest.mark.parametrize("sr", [22050, 24000, 44100])
def test_streaming_meter_matches_pyloudnorm(sr):
    audio = np.concatenate([speechlike(20.0, sr, seed=2), silence(3.0, sr), speechlike(15.0, sr, amp=0.05)])
    reference = pyloudnorm.Meter(sr).integrated_loudness(audio.astype(np.float64))
    assert integrated_loudness(audio, sr) == pytest.approx(reference, abs=0.05)


def test_reaches_target_when_no_limiting_is_needed():
    quiet = speechlike(30.0, SR, amp=0.02)
    out = normalize_loudness(quiet, SR, target_lufs=-19.0, peak_dbfs=-1.0)
    assert out.dtype == np.float32
    assert pyloudnorm.Meter(SR).integrated_loudness(out.astype(np.float64)) == pytest.approx(-19.0, abs=0.5)
    # A pure gain: the waveform's shape is untouched.
    assert np.corrcoef(out, quiet)[0, 1] > 0.9999


def test_peaks_stay_under_the_ceiling_when_the_gain_would_clip():
    audio = speechlike(20.0, SR, amp=0.01)
    # A plosive-like burst 13 dB above the speech peaks: 5 ms of 1 kHz under a Hann window.
    burst = (0.06 * np.hanning(110) * np.sin(2 * np.pi * 1000 * np.arange(110) / SR)).astype(np.float32)
    at = SR * 5
    audio[at : at + 110] = burst
    audio[SR * 12 + 7] = -0.08
    out = normalize_loudness(audio, SR, target_lufs=-19.0, peak_dbfs=-1.0)
    ceiling = 10 ** (-1.0 / 20)
    assert np.abs(out).max() <= ceiling + 1e-7
    # The limiter acts around the peaks only: the speech keeps the target loudness.
    assert integrated_loudness(out, SR) == pytest.approx(-19.0, abs=0.5)
    # It turns the gain down smoothly instead of clipping: the burst keeps its waveform.
    limited = out[at : at + 110]
    assert np.abs(limited).max() > 0.5 * ceiling
    assert np.corrcoef(limited, burst)[0, 1] > 0.99
    assert np.count_nonzero(np.abs(limited) >= ceiling - 1e-6) <= 2


def test_loud_full_scale_input_is_brought_under_the_ceiling():
    out = normalize_loudness(tone(5.0, SR, amp=1.0), SR, target_lufs=-5.0, peak_dbfs=-3.0)
    assert np.abs(out).max() <= 10 ** (-3.0 / 20) + 1e-7


def test_silence_and_tiny_inputs_do_not_crash():
    assert not normalize_loudness(silence(2.0, SR), SR).any()
    assert normalize_loudness(np.zeros(0, dtype=np.float32), SR).shape == (0,)
    short = tone(0.1, SR, amp=0.05)  # shorter than one 400 ms gating block
    out = normalize_loudness(short, SR, target_lufs=-19.0)
    assert out.shape == short.shape and np.abs(out).max() <= 10 ** (-1 / 20) + 1e-7
    assert integrated_loudness(out, SR) == pytest.approx(-19.0, abs=0.5)
    assert normalize_loudness(np.array([0.3], dtype=np.float32), SR).shape == (1,)


def test_input_is_not_modified():
    audio = speechlike(2.0, SR)
    copy = audio.copy()
    normalize_loudness(audio, SR, target_lufs=-10.0)
    np.testing.assert_array_equal(audio, copy)
