"""True peak (ITU-R BS.1770-4 annex 2): the peak of the waveform between samples, found by oversampling.

A sample-peak ceiling lets the reconstructed waveform overshoot between samples, and every later
resample or lossy encode shows that overshoot: a -1 dBFS sample-peak ceiling measured +0.56 dBFS after
resampling to 48 kHz. Retailers (ACX: -3 dBFS) and broadcasters (EBU R128: -1 dBTP) check true peak,
so the limiter here works on the 4x-oversampled envelope, and runs on the audio at the rate the file
will have (after the last resample).

Both the meter and the limiter work block by block (with a few samples of context at each side for
the interpolation filter), so their memory does not grow with the length of a chapter.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from shared.audio.levels import as_mono_float32
from shared.audio.loudness import limit_in_place

OVERSAMPLE = 4
"""BS.1770-4 asks for at least 4x at 48 kHz; the same factor is used at every rate."""
_BLOCK = 1 << 18
_CONTEXT = 64
"""Samples of context either side of a block: more than the interpolation filter's half-length."""
TRUE_PEAK_CONTEXT = _CONTEXT
_PASSES = 6


def _oversampled_envelope(audio: np.ndarray) -> np.ndarray:
    """Per input sample, the largest magnitude of the 4x-oversampled waveform from that sample to the
    next one (so the peak between two samples is attributed to the earlier)."""
    n = audio.shape[0]
    out = np.empty(n, dtype=np.float32)
    for begin in range(0, n, _BLOCK):
        end = min(n, begin + _BLOCK)
        lo, hi = max(0, begin - _CONTEXT), min(n, end + _CONTEXT)
        up = scipy.signal.resample_poly(audio[lo:hi].astype(np.float64), OVERSAMPLE, 1)
        up = np.abs(up[(begin - lo) * OVERSAMPLE : (end - lo) * OVERSAMPLE])
        # Each sample's span: its own oversampled value and the OVERSAMPLE-1 that follow it.
        span = up.reshape(-1, OVERSAMPLE).max(axis=1)
        out[begin:end] = np.maximum(span, np.abs(audio[begin:end]))
    return out


def true_peak(audio: np.ndarray) -> float:
    """Largest magnitude of the 4x-oversampled waveform (linear; 0 for silence or no samples)."""
    audio = as_mono_float32(audio)
    if audio.shape[0] == 0:
        return 0.0
    peak = 0.0
    for begin in range(0, audio.shape[0], _BLOCK):
        piece = audio[max(0, begin - _CONTEXT) : begin + _BLOCK + _CONTEXT]
        up = scipy.signal.resample_poly(piece.astype(np.float64), OVERSAMPLE, 1)
        peak = max(peak, float(np.max(np.abs(up))), float(np.max(np.abs(piece))))
    return peak


def true_peak_with_context(before: np.ndarray, block: np.ndarray) -> float:
    """The true peak of `block` with the samples `before` it as the filter's history (a streaming meter
    carries them from the previous block); the block's own end is read without look-ahead."""
    if block.shape[0] == 0:
        return 0.0
    piece = np.concatenate([before, block]).astype(np.float64)
    up = scipy.signal.resample_poly(piece, OVERSAMPLE, 1)[before.shape[0] * OVERSAMPLE :]
    return max(float(np.max(np.abs(up))), float(np.max(np.abs(block))))


def true_peak_dbfs(audio: np.ndarray) -> float:
    """`true_peak` in dBFS (dBTP); -inf for silence."""
    peak = true_peak(audio)
    return float(20.0 * np.log10(peak)) if peak > 0 else float("-inf")


def limit_true_peak_in_place(audio: np.ndarray, sr: int, ceiling_dbfs: float) -> None:
    """Lower the gain around the places whose true peak is above `ceiling_dbfs`, and only there.

    The look-ahead limiter of `shared.audio.loudness` runs on the oversampled envelope instead of the
    samples. Its gain curve is smooth over milliseconds, so the interpolated peaks scale with it; a
    pass that leaves a hair over (the filter's ringing around a lowered stretch) is followed by
    another at a slightly lower ceiling.
    """
    ceiling = float(10.0 ** (ceiling_dbfs / 20.0))
    target = ceiling
    for _ in range(_PASSES):
        if true_peak(audio) <= ceiling:
            return
        limit_in_place(audio, sr, np.float32(target), magnitude=_oversampled_envelope)
        target *= 0.995
    # Still over after every pass (pathological material such as full-scale square waves): scale the
    # whole signal, which always works and is never needed for speech.
    peak = true_peak(audio)
    if peak > ceiling:
        audio *= np.float32(ceiling / peak * 0.999)
