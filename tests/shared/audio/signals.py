"""Deterministic test signals: speech-like bursts, tones, silence."""

from __future__ import annotations

import numpy as np


def tone(seconds: float, sr: int, *, freq: float = 220.0, amp: float = 0.3, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def speechlike(seconds: float, sr: int, *, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """Syllable-rate (~4 Hz) amplitude-modulated harmonics plus noise, with short gaps like words."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    noise = rng.standard_normal(n) * 0.3
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    return (amp * envelope * (voiced + noise) / 2.0).astype(np.float32)


def silence(seconds: float, sr: int) -> np.ndarray:
    return np.zeros(round(seconds * sr), dtype=np.float32)


def dbfs_rms(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-30)
