"""Mastering presets: the report's figures against an independent meter, and every ACX rule at every rate.

The independent meter is pyloudnorm (BS.1770 integrated loudness) and a 4x-oversampled true peak made
with libsoxr's very-high-quality resampler, not the polyphase filter the limiter uses; RMS and the noise
floor are recomputed with plain numpy.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import soxr

from shared.audio.mastering import master_chapter, measure
from shared.audio.presets import MasteringPreset, preset_targets
from shared.audio.resample import resample
from shared.audio.true_peak import limit_true_peak_in_place, true_peak_dbfs
from tests.shared.audio.signals import speechlike

RATES = (16000, 22050, 24000, 44100, 48000)


def independent_true_peak_db(audio: np.ndarray, sr: int) -> float:
    up = soxr.resample(audio.astype(np.float64), sr, 4 * sr, quality="VHQ")
    return float(20 * np.log10(np.max(np.abs(up))))


def chapter(sr: int) -> np.ndarray:
    """A sample chapter as the engine gives it (22.05 kHz, hot peaks), resampled to the file's rate,
    with inter-sample-heavy bursts (a tone at a quarter of the rate, 45 degrees off the samples)."""
    speech = resample(speechlike(12.0, 22050, amp=0.7, seed=3), 22050, sr)
    t = np.arange(speech.shape[0]) / sr
    bursts = (0.8 * np.sin(2 * np.pi * sr / 4 * t + np.pi / 4) * ((t % 3.0) < 0.03)).astype(np.float32)
    return speech + bursts


@pytest.mark.parametrize("sr", RATES)
def test_acx_chapter_passes_every_rule_and_the_report_agrees_with_an_independent_meter(sr):
    targets = preset_targets(MasteringPreset.ACX, default_lufs=-19.0, default_peak_dbfs=-1.0)
    mastered = master_chapter(chapter(sr), sr, targets)
    report = measure(mastered.audio, sr, targets)
    assert report.passed, [(rule.name, rule.value) for rule in report.rules if not rule.passed]
    assert {rule.name for rule in report.rules} == {
        "true_peak_dbfs", "rms_db", "noise_floor_db", "head_silence_seconds", "tail_silence_seconds",
    }  # fmt: skip
    audio = mastered.audio.astype(np.float64)
    independent_tp = independent_true_peak_db(mastered.audio, sr)
    assert independent_tp <= -3.0
    assert report.true_peak_dbfs == pytest.approx(independent_tp, abs=0.25)
    assert report.loudness_lufs == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(audio), abs=0.1)
    rms = 20 * np.log10(np.sqrt(np.mean(audio**2)))
    assert -23.0 <= rms <= -18.0 and report.rms_db == pytest.approx(rms, abs=0.01)
    half_second = int(0.5 * sr)
    head = audio[:half_second]  # room tone only
    assert 20 * np.log10(np.sqrt(np.mean(head**2))) <= -60.0 and report.noise_floor_db <= -60.0
    assert np.all(head != 0.0)  # room tone, not digital silence
    assert 0.5 <= report.head_silence_seconds <= 1.0 and 1.0 <= report.tail_silence_seconds <= 5.0
    assert report.to_dict()["passed"] is True


@pytest.mark.parametrize(
    ("preset", "lufs"), [(MasteringPreset.PODCAST, -16.0), (MasteringPreset.BROADCAST_EBU_R128, -23.0)]
)
def test_loudness_presets_land_on_their_target_under_their_true_peak(preset, lufs):
    sr = 48000
    targets = preset_targets(preset, default_lufs=-19.0, default_peak_dbfs=-1.0)
    mastered = master_chapter(chapter(sr), sr, targets)
    report = measure(mastered.audio, sr, targets)
    assert report.passed
    measured = pyloudnorm.Meter(sr).integrated_loudness(mastered.audio.astype(np.float64))
    assert measured == pytest.approx(lufs, abs=1.0 if preset is MasteringPreset.PODCAST else 0.5)
    assert independent_true_peak_db(mastered.audio, sr) <= -1.0


def test_a_sample_peak_ceiling_overshoots_after_resampling_but_a_true_peak_one_does_not():
    """The bug this replaces: limiting sample peaks to -1 dBFS, then resampling to 48 kHz."""
    source = chapter(22050)
    peak = np.float32(10 ** (-1 / 20))
    sample_limited = source * (peak / np.max(np.abs(source)))
    assert independent_true_peak_db(resample(sample_limited, 22050, 48000), 48000) > -1.0
    final = resample(source, 22050, 48000)
    limit_true_peak_in_place(final, 48000, -1.0)
    assert independent_true_peak_db(final, 48000) <= -0.95 and true_peak_dbfs(final) <= -1.0


def test_a_failed_rule_is_reported_with_its_value():
    sr = 22050
    targets = preset_targets(MasteringPreset.ACX, default_lufs=-19.0, default_peak_dbfs=-1.0)
    quiet = speechlike(5.0, sr, amp=0.01)  # never mastered: far too quiet, no room tone
    report = measure(quiet, sr, targets)
    failed = {rule.name for rule in report.rules if not rule.passed}
    assert "rms_db" in failed and "head_silence_seconds" in failed and not report.passed
    rule = next(r for r in report.to_dict()["rules"] if r["name"] == "rms_db")
    assert rule["value"] < -23.0 and (rule["min"], rule["max"]) == (-23.0, -18.0) and rule["passed"] is False
