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


_STREAM_BLOCK = 1 << 18


def resample_padded(audio: np.ndarray, sr_in: int, sr_out: int, head: int, tail: int) -> tuple[np.ndarray, int]:
    """`audio` at `sr_out` laid into a new zeroed buffer after `head` samples and before `tail`, and the
    resampled length: libsoxr's stream resampler writes block by block straight into place, so the
    chapter never exists twice at the output rate (and with equal rates it is one copy)."""
    audio = as_mono_float32(audio)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError("sample rates must be positive")
    expected = -(-audio.shape[0] * sr_out // sr_in) + 64
    out = np.zeros(head + expected + tail, dtype=np.float32)
    if sr_in == sr_out:
        out[head : head + audio.shape[0]] = audio
        return out[: head + audio.shape[0] + tail], audio.shape[0]
    stream = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")
    position = head
    for begin in range(0, max(audio.shape[0], 1), _STREAM_BLOCK):
        last = begin + _STREAM_BLOCK >= audio.shape[0]
        block = stream.resample_chunk(audio[begin : begin + _STREAM_BLOCK], last=last)
        out[position : position + block.shape[0]] = block
        position += block.shape[0]
    length = position - head
    return out[: head + length + tail], length
