"""Master one chapter to a preset's targets, and report how a finished file measures against them.

A chapter is mastered at the rate its file will have (after the last resample): room tone at its
head and tail, the gain to the level target (integrated loudness, or RMS for ACX, which measures plain
RMS over the file), a room-tone bed under the whole chapter where the preset asks for one, then the
true-peak limiter (`shared.audio.true_peak`). Limiting lowers the level a little; the shortfall is
made up and the limiter runs again (a few times at most), so the file lands inside the preset's window.

The report is measured on the finished samples by the same meters a retailer's check uses (BS.1770
loudness, 4x-oversampled true peak, RMS, the quietest half second as noise floor, silence at the head
and tail), each with its rule and a pass/fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.signal

from shared.audio.levels import as_mono_float32, frame_levels
from shared.audio.loudness import integrated_loudness
from shared.audio.presets import MasteringTargets
from shared.audio.true_peak import limit_true_peak_in_place, true_peak_dbfs

NOISE_FLOOR_WINDOW_MS = 500.0
"""The noise floor is the RMS of the quietest window this long (how ACX's check reads it)."""
SILENCE_THRESHOLD_DB = -50.0
"""Head and tail silence end where a 10 ms window first reaches this level (speech, not room tone)."""
_MAKEUP_PASSES = 3


@dataclass(frozen=True)
class Mastered:
    audio: np.ndarray
    head_samples: int
    """Samples of room tone before the chapter's speech (cue and chapter times shift by this much)."""


def master_chapter(speech: np.ndarray, sr: int, targets: MasteringTargets, *, seed: int = 0) -> Mastered:
    """`speech` (mono float32 at the file's rate) with room tone, at the level target, under the
    true-peak ceiling. Silence comes back with its room tone only."""
    speech = as_mono_float32(speech)
    head = round(targets.head_room_tone_s * sr)
    tail = round(targets.tail_room_tone_s * sr)
    out = np.zeros(head + speech.shape[0] + tail, dtype=np.float32)
    out[head : head + speech.shape[0]] = speech
    body = out[head : head + speech.shape[0]]
    gain = _level_gain(body, sr, targets, total=out.shape[0])
    if gain is not None:
        body *= np.float32(gain)
    if targets.room_tone_db is not None:
        out += room_tone(out.shape[0], sr, targets.room_tone_db, seed=seed)
    ceiling = targets.true_peak_dbfs - targets.limiter_margin_db
    limit_true_peak_in_place(out, sr, ceiling)
    if gain is not None:
        for _ in range(_MAKEUP_PASSES):
            if targets.rms_db is not None:
                short = targets.rms_db - rms_dbfs(out)
            else:
                assert targets.loudness_lufs is not None
                short = targets.loudness_lufs - integrated_loudness(out, sr)
            if short < 0.1:
                break
            out *= np.float32(10.0 ** (short / 20.0))
            limit_true_peak_in_place(out, sr, ceiling)
    return Mastered(out, head)


def _level_gain(body: np.ndarray, sr: int, targets: MasteringTargets, *, total: int) -> float | None:
    if targets.rms_db is not None:
        energy = float(np.dot(body.astype(np.float64), body.astype(np.float64)))
        if energy <= 0:
            return None
        return 10.0 ** (targets.rms_db / 20.0) / np.sqrt(energy / max(total, 1))
    assert targets.loudness_lufs is not None
    loudness = integrated_loudness(body, sr)
    if not np.isfinite(loudness):
        return None
    return 10.0 ** ((targets.loudness_lufs - loudness) / 20.0)


def room_tone(n: int, sr: int, level_db: float, *, seed: int = 0) -> np.ndarray:
    """`n` samples of soft, steady noise at `level_db` RMS: pink-ish (white through a one-pole low
    pass), deterministic for a seed so a re-render of a chapter is identical."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n).astype(np.float32)
    if n == 0:
        return white
    # One-pole low pass at about 2 kHz: a room's hum and air, not a hiss.
    pole = float(np.exp(-2.0 * np.pi * 2000.0 / sr))
    shaped = np.asarray(scipy.signal.lfilter([1.0 - pole], [1.0, -pole], white), dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(shaped, dtype=np.float64)))) or 1.0
    return shaped * np.float32(10.0 ** (level_db / 20.0) / rms)


def rms_dbfs(audio: np.ndarray) -> float:
    """Plain RMS of the whole signal in dB re full scale (a full-scale square wave is 0 dB)."""
    audio = as_mono_float32(audio)
    if audio.shape[0] == 0:
        return float("-inf")
    mean_square = float(np.mean(np.square(audio, dtype=np.float64)))
    return float(10.0 * np.log10(mean_square)) if mean_square > 0 else float("-inf")


@dataclass(frozen=True)
class Rule:
    name: str
    value: float
    low: float | None
    high: float | None

    @property
    def passed(self) -> bool:
        if not np.isfinite(self.value):
            # -inf (digital silence) meets an upper bound only; nothing meets a lower one.
            return self.value < 0 and self.low is None
        return (self.low is None or self.value >= self.low - 1e-6) and (
            self.high is None or self.value <= self.high + 1e-6
        )


@dataclass(frozen=True)
class MasteringReport:
    """How one finished file measures; `rules` are the preset's, each with the measured value."""

    preset: str
    sample_rate: int
    duration_seconds: float
    rms_db: float
    loudness_lufs: float
    true_peak_dbfs: float
    noise_floor_db: float
    head_silence_seconds: float
    tail_silence_seconds: float
    rules: list[Rule] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(rule.passed for rule in self.rules)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (infinities become null) for the job record."""
        data = asdict(self)
        data["rules"] = [
            {"name": r.name, "value": _finite(r.value), "min": r.low, "max": r.high, "passed": r.passed}
            for r in self.rules
        ]
        data["passed"] = self.passed
        return {key: _finite(value) if isinstance(value, float) else value for key, value in data.items()}


def _finite(value: float) -> float | None:
    return round(value, 2) if np.isfinite(value) else None


def measure(audio: np.ndarray, sr: int, targets: MasteringTargets) -> MasteringReport:
    """The report of a finished file's samples against `targets`."""
    audio = as_mono_float32(audio)
    levels = frame_levels(audio, sr, window_ms=NOISE_FLOOR_WINDOW_MS, hop_ms=100.0)
    noise_floor = float(levels.db.min()) if levels.db.size else float("-inf")
    if noise_floor <= -199.0:
        noise_floor = float("-inf")
    fine = frame_levels(audio, sr, window_ms=10.0, hop_ms=5.0)
    loud = np.flatnonzero(fine.db >= SILENCE_THRESHOLD_DB)
    duration = audio.shape[0] / sr
    if loud.size:
        head = float(fine.starts[loud[0]]) / sr
        tail = max(0.0, duration - float(fine.starts[loud[-1]] + fine.window) / sr)
    else:
        head = tail = duration
    report = MasteringReport(
        preset=targets.preset.value,
        sample_rate=sr,
        duration_seconds=duration,
        rms_db=rms_dbfs(audio),
        loudness_lufs=integrated_loudness(audio, sr),
        true_peak_dbfs=true_peak_dbfs(audio),
        noise_floor_db=noise_floor,
        head_silence_seconds=head,
        tail_silence_seconds=tail,
    )
    rules = [Rule("true_peak_dbfs", report.true_peak_dbfs, None, targets.true_peak_dbfs)]
    if targets.rms_range_db:
        rules.append(Rule("rms_db", report.rms_db, *targets.rms_range_db))
    if targets.loudness_range_lufs:
        rules.append(Rule("loudness_lufs", report.loudness_lufs, *targets.loudness_range_lufs))
    if targets.noise_floor_max_db is not None:
        rules.append(Rule("noise_floor_db", report.noise_floor_db, None, targets.noise_floor_max_db))
    if targets.head_range_s:
        rules.append(Rule("head_silence_seconds", head, *targets.head_range_s))
    if targets.tail_range_s:
        rules.append(Rule("tail_silence_seconds", tail, *targets.tail_range_s))
    return MasteringReport(**{**asdict(report), "rules": rules})
