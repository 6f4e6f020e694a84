"""Join generated chunks into one continuous track with pauses and click-free seams.

The reference server butt-joins chunks with 0.2 s of silence: a chunk that ends mid-waveform (or was
trimmed at a non-zero sample) steps to zero and clicks, and the fixed gap ignores whether a clause,
sentence or paragraph ended. Here every pause comes from the caller and every join is shaped:

- pause > 0: the end of the earlier chunk fades out and the start of the next fades in (raised-cosine
  edges of `fade_ms`, laid over the chunks' own samples, so no duration is added or lost);
- pause == 0: the chunks overlap by `fade_ms` and crossfade. The crossfade is power-complementary for
  the correlation measured between the two overlapping stretches (R. Bristow-Johnson's crossfade):
  equal-power for unrelated material, tending to equal-gain for material that continues the same
  waveform, so the level neither dips nor bulges across the seam.

The output's first and last `fade_ms` fade in and out too, so a file never starts or ends on a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.audio.levels import as_mono_float32


@dataclass(frozen=True)
class Stitched:
    audio: np.ndarray
    """Mono float32 in [-1, 1]."""
    spans: list[tuple[float, float]]
    """(start_seconds, end_seconds) of each input segment in `audio`; crossfaded neighbours overlap."""
    sample_rate: int

    @property
    def duration_seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def stitch(segments: Sequence[np.ndarray], pauses_ms: Sequence[int], sr: int, *, fade_ms: float = 8.0) -> Stitched:
    """Concatenate `segments` with `pauses_ms[i]` of silence after `segments[i]`.

    One output buffer is allocated up front and each segment is written into place once, so an hour
    of audio costs one hour-sized array and no repeated concatenation. `fade_ms=0` joins without any
    shaping (for chunks a codec already decoded as one continuous waveform).
    """
    if len(segments) == 0:
        if len(pauses_ms) != 0:
            raise ValueError("pauses_ms must be empty when there are no segments")
        return Stitched(np.zeros(0, dtype=np.float32), [], sr)
    if len(pauses_ms) != len(segments) - 1:
        raise ValueError(f"need {len(segments) - 1} pauses for {len(segments)} segments, got {len(pauses_ms)}")
    if any(p < 0 for p in pauses_ms):
        raise ValueError("pauses_ms must be >= 0")
    if fade_ms < 0:
        raise ValueError("fade_ms must be >= 0")

    segs = [as_mono_float32(s) for s in segments]
    lengths = [s.shape[0] for s in segs]
    fade = round(sr * fade_ms / 1000.0)
    gaps = [round(sr * p / 1000.0) for p in pauses_ms]
    # A segment may be faded or crossfaded at both ends: each end gets at most half of it.
    overlaps = [min(fade, lengths[i] // 2, lengths[i + 1] // 2) if gaps[i] == 0 else 0 for i in range(len(gaps))]
    starts = [0]
    for i, gap in enumerate(gaps):
        starts.append(starts[i] + lengths[i] + gap - overlaps[i])
    out = np.zeros(starts[-1] + lengths[-1], dtype=np.float32)

    head_gain: np.ndarray = _fade_in(min(fade, lengths[0] // 2))
    for i, seg in enumerate(segs):
        if i < len(gaps) and overlaps[i] > 0:
            tail_gain, next_head = _crossfade(seg[-overlaps[i] :], segs[i + 1][: overlaps[i]])
        else:
            tail_gain = _fade_in(min(fade, lengths[i] // 2))[::-1]
            next_head = _fade_in(min(fade, lengths[i + 1] // 2)) if i + 1 < len(segs) else np.zeros(0, np.float32)
        _place(out, seg, starts[i], head_gain, tail_gain)
        head_gain = next_head

    np.clip(out, -1.0, 1.0, out=out)
    spans = [(start / sr, (start + length) / sr) for start, length in zip(starts, lengths, strict=True)]
    return Stitched(out, spans, sr)


def _place(out: np.ndarray, seg: np.ndarray, start: int, head: np.ndarray, tail: np.ndarray) -> None:
    """Add `seg` at `start` with `head`/`tail` gains on its first/last samples (summing crossfades)."""
    n = seg.shape[0]
    h, t = head.shape[0], tail.shape[0]
    if h:
        out[start : start + h] += seg[:h] * head
    # The middle belongs to this segment alone: a plain copy.
    out[start + h : start + n - t] = seg[h : n - t]
    if t:
        out[start + n - t : start + n] += seg[n - t :] * tail


def _fade_in(n: int) -> np.ndarray:
    """Raised-cosine rise over n samples, sampled at sample centres (never exactly 0 or 1)."""
    x = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.sin(0.5 * np.pi * x).astype(np.float32) ** 2


def _crossfade(tail: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fade-out gain for `tail`, fade-in gain for `head`) with g_in² + g_out² + 2 r g_in g_out = 1."""
    n = tail.shape[0]
    a, b = tail.astype(np.float64), head.astype(np.float64)
    energy = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    # Anti-correlated material would need gains above 1; treat it as unrelated (equal power).
    r = min(max(float(np.dot(a, b)) / energy, 0.0), 1.0) if energy > 0 else 0.0
    t = (np.arange(n, dtype=np.float64) + 0.5) / n * 2.0 - 1.0
    odd = 0.5 * np.sin(0.5 * np.pi * t)
    even = np.sqrt(np.maximum(1.0 - 2.0 * (1.0 - r) * odd**2, 0.0) / (2.0 * (1.0 + r)))
    return (even - odd).astype(np.float32), (even + odd).astype(np.float32)
