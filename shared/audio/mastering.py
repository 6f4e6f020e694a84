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

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import scipy.signal

from shared.audio.levels import as_mono_float32
from shared.audio.loudness import gated_loudness, integrated_loudness, k_weighting_sos
from shared.audio.presets import MasteringTargets
from shared.audio.true_peak import TruePeakMeter, limit_true_peak_in_place

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


def padding(targets: MasteringTargets, sr: int) -> tuple[int, int]:
    """Samples of room tone before and after a chapter's speech."""
    return round(targets.head_room_tone_s * sr), round(targets.tail_room_tone_s * sr)


def master_chapter(speech: np.ndarray, sr: int, targets: MasteringTargets, *, seed: int = 0) -> Mastered:
    """`speech` (mono float32 at the file's rate) with room tone, at the level target, under the
    true-peak ceiling. Silence comes back with its room tone only."""
    speech = as_mono_float32(speech)
    head, tail = padding(targets, sr)
    out = np.zeros(head + speech.shape[0] + tail, dtype=np.float32)
    out[head : head + speech.shape[0]] = speech
    master_padded(out, head, speech.shape[0], sr, targets, seed=seed)
    return Mastered(out, head)


def master_padded(
    out: np.ndarray,
    head: int,
    length: int,
    sr: int,
    targets: MasteringTargets,
    *,
    seed: int = 0,
    gain: float | None = None,
) -> float | None:
    """`master_chapter` in place on a chapter already laid out with its padding (speech at
    `out[head:head + length]`, zeros around it): the assembly resamples straight into such a buffer,
    so a chapter exists once at the file's rate. Returns the level gain applied; `gain` applies that
    one instead of measuring (a pickup keeps its original's level, so only its span changes)."""
    body = out[head : head + length]
    held = gain is not None
    if gain is None:
        gain = _level_gain(body, sr, targets, total=out.shape[0])
    if gain is not None:
        body *= np.float32(gain)
    if targets.room_tone_db is not None:
        add_room_tone(out, sr, targets.room_tone_db, seed=seed)
    ceiling = targets.true_peak_dbfs - targets.limiter_margin_db
    limit_true_peak_in_place(out, sr, ceiling)
    if held:
        return gain
    # The limiter leaves the level a little low; where the preset has a window to land in, that is made
    # up (and limited again), a full read each time, so only when it is worth a tenth of a dB or more.
    if gain is not None and (targets.rms_range_db or targets.loudness_range_lufs):
        for _ in range(_MAKEUP_PASSES):
            if targets.rms_db is not None:
                short = targets.rms_db - rms_dbfs(out)
            else:
                assert targets.loudness_lufs is not None
                short = targets.loudness_lufs - integrated_loudness(out, sr)
            if short < 0.1:
                break
            out *= np.float32(10.0 ** (short / 20.0))
            gain *= 10.0 ** (short / 20.0)
            limit_true_peak_in_place(out, sr, ceiling)
    return gain


_BLOCK = 1 << 20


def _energy(audio: np.ndarray) -> float:
    """Sum of squares in float64, block by block (a float64 copy of an hour would be 1.3 GB)."""
    total = 0.0
    for begin in range(0, audio.shape[0], _BLOCK):
        block = audio[begin : begin + _BLOCK].astype(np.float64)
        total += float(np.dot(block, block))
    return total


def _level_gain(body: np.ndarray, sr: int, targets: MasteringTargets, *, total: int) -> float | None:
    if targets.rms_db is not None:
        energy = _energy(body)
        if energy <= 0:
            return None
        return 10.0 ** (targets.rms_db / 20.0) / np.sqrt(energy / max(total, 1))
    assert targets.loudness_lufs is not None
    loudness = integrated_loudness(body, sr)
    if not np.isfinite(loudness):
        return None
    return 10.0 ** ((targets.loudness_lufs - loudness) / 20.0)


def room_tone(n: int, sr: int, level_db: float, *, seed: int = 0) -> np.ndarray:
    """`n` samples of soft, steady noise at `level_db` RMS (see `add_room_tone`)."""
    out = np.zeros(n, dtype=np.float32)
    add_room_tone(out, sr, level_db, seed=seed)
    return out


def add_room_tone(out: np.ndarray, sr: int, level_db: float, *, seed: int = 0) -> None:
    """Add room tone to `out` in place: white noise through a one-pole low pass at about 2 kHz (a room's
    air, not a hiss), at `level_db` RMS, deterministic for a seed so a re-render is identical. Made
    block by block with the filter's state carried, so it costs no chapter-sized temporaries."""
    rng = np.random.default_rng(seed)
    pole = float(np.exp(-2.0 * np.pi * 2000.0 / sr))
    # The filter's output RMS for unit white noise: sqrt((1 - p) / (1 + p)).
    scale = 10.0 ** (level_db / 20.0) / np.sqrt((1.0 - pole) / (1.0 + pole))
    state = np.zeros(1)
    for begin in range(0, out.shape[0], _BLOCK):
        white = rng.standard_normal(min(_BLOCK, out.shape[0] - begin))
        shaped, state = scipy.signal.lfilter([1.0 - pole], [1.0, -pole], white, zi=state)
        out[begin : begin + white.shape[0]] += (np.asarray(shaped) * scale).astype(np.float32)


def rms_dbfs(audio: np.ndarray) -> float:
    """Plain RMS of the whole signal in dB re full scale (a full-scale square wave is 0 dB)."""
    audio = as_mono_float32(audio)
    if audio.shape[0] == 0:
        return float("-inf")
    mean_square = _energy(audio) / audio.shape[0]
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


class Meter:
    """The report's measurements made as a file's audio goes by, piece after piece (chapter by chapter),
    so a whole book is measured without holding it: sum of squares, BS.1770 K-weighted energy per 100 ms
    step (filter state carried), plain energy per step (noise floor: the quietest five steps), 10 ms
    frame levels for the first and last sound, and the true peak with interpolation context carried."""

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self.step = round(sr * 0.1)
        self.frame = max(1, self.step // 10)
        self._sos = k_weighting_sos(sr)
        self._zi = np.zeros((self._sos.shape[0], 2))
        self._pending = np.zeros(0, np.float32)
        self._k_steps: list[np.ndarray] = []
        self._plain_steps: list[np.ndarray] = []
        self._sum_squares = 0.0
        self._samples = 0
        self._first_loud: int | None = None
        self._last_loud_end: int | None = None
        self._true_peak = TruePeakMeter()
        self._threshold = 10.0 ** (SILENCE_THRESHOLD_DB / 10.0)

    def add(self, audio: np.ndarray) -> None:
        audio = as_mono_float32(audio)
        for begin in range(0, audio.shape[0], _BLOCK):
            self._add_block(audio[begin : begin + _BLOCK])

    def _add_block(self, block: np.ndarray) -> None:
        self._true_peak.add(block)
        data = np.concatenate([self._pending, block]) if self._pending.size else block
        usable = data.shape[0] // self.step * self.step
        whole, self._pending = data[:usable], data[usable:].copy()
        if usable:
            self._add_steps(whole)

    def _add_steps(self, whole: np.ndarray) -> None:
        as64 = whole.astype(np.float64)
        squares = np.square(as64)
        self._sum_squares += float(squares.sum())
        offset = self._samples
        self._samples += whole.shape[0]
        self._plain_steps.append(squares.reshape(-1, self.step).sum(axis=1))
        weighted, self._zi = scipy.signal.sosfilt(self._sos, as64, zi=self._zi)
        self._k_steps.append(np.square(weighted).reshape(-1, self.step).sum(axis=1))
        frames = squares[: whole.shape[0] // self.frame * self.frame].reshape(-1, self.frame).mean(axis=1)
        loud = np.flatnonzero(frames >= self._threshold)
        if loud.size:
            if self._first_loud is None:
                self._first_loud = offset + int(loud[0]) * self.frame
            self._last_loud_end = offset + (int(loud[-1]) + 1) * self.frame

    def report(self, targets: MasteringTargets) -> MasteringReport:
        if self._pending.size:  # the last partial step counts for RMS, silence and peak, not loudness
            rest, self._pending = self._pending, np.zeros(0, np.float32)
            squares = np.square(rest.astype(np.float64))
            self._sum_squares += float(squares.sum())
            loud = np.flatnonzero(squares >= self._threshold)
            if loud.size:
                if self._first_loud is None:
                    self._first_loud = self._samples + int(loud[0])
                self._last_loud_end = self._samples + int(loud[-1]) + 1
            self._samples += rest.shape[0]
        n, sr = self._samples, self.sr
        duration = n / sr
        rms = 10.0 * np.log10(self._sum_squares / n) if n and self._sum_squares > 0 else float("-inf")
        plain = np.concatenate(self._plain_steps) if self._plain_steps else np.zeros(0)
        k_steps = np.concatenate(self._k_steps) if self._k_steps else np.zeros(0)
        noise_floor = float("-inf")
        if plain.size >= 5:
            windows = np.lib.stride_tricks.sliding_window_view(plain, 5).sum(axis=1) / (5 * self.step)
            quietest = float(windows.min())
            noise_floor = 10.0 * np.log10(quietest) if quietest > 0 else float("-inf")
        elif n and self._sum_squares > 0:
            noise_floor = rms
        head = (self._first_loud if self._first_loud is not None else n) / sr
        tail = (n - self._last_loud_end) / sr if self._last_loud_end is not None else duration
        peak = self._true_peak.finish()
        report = MasteringReport(
            preset=targets.preset.value,
            sample_rate=sr,
            duration_seconds=duration,
            rms_db=float(rms),
            loudness_lufs=gated_loudness(k_steps, self.step),
            true_peak_dbfs=float(20.0 * np.log10(peak)) if peak > 0 else float("-inf"),
            noise_floor_db=float(noise_floor),
            head_silence_seconds=head,
            tail_silence_seconds=max(0.0, tail),
        )
        return _with_rules(report, targets)


def measure(audio: np.ndarray, sr: int, targets: MasteringTargets) -> MasteringReport:
    """The report of a finished file's samples against `targets` (a `Meter` fed once)."""
    meter = Meter(sr)
    meter.add(audio)
    return meter.report(targets)


def _with_rules(report: MasteringReport, targets: MasteringTargets) -> MasteringReport:
    head, tail = report.head_silence_seconds, report.tail_silence_seconds
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
    return replace(report, rules=rules)
