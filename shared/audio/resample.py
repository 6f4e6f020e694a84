"""Sample-rate conversion with libsoxr (high quality), e.g. 22.05 kHz engine audio to 48 kHz Opus."""

from __future__ import annotations

import numpy as np
import soxr

from shared.audio.levels import as_mono_float32


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Mono float32 at `sr_out`; the input itself when the rates already match."""
    audio = as_mono_float32(audio)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError("sample rates must be positive")
    if sr_in == sr_out:
        return audio
    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
