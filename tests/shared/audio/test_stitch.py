import itertools

import numpy as np
import pytest

from shared.audio.stitch import Stitched, stitch
from tests.shared.audio.signals import tone

SR = 24000
FADE_MS = 8.0


def _max_step(audio: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(audio.astype(np.float64)))))


def _seam_steps(result: Stitched, radius: int = 400) -> list[float]:
    """Largest first difference within `radius` samples of every join (both ends of each span)."""
    steps = []
    for start, end in result.spans:
        for edge in (round(start * SR), round(end * SR)):
            lo, hi = max(0, edge - radius), min(result.audio.shape[0], edge + radius)
            if hi - lo > 1:
                steps.append(_max_step(result.audio[lo:hi]))
    return steps


# At 250 Hz the 8 ms overlap holds whole periods: the overlapping stretches are identical (r = 1),
# where a fixed equal-power fade would bulge by 3 dB; at 220 Hz they are nearly unrelated.
@pytest.mark.parametrize("freq", [220.0, 250.0])
def test_continuous_sine_cut_into_pieces_stays_continuous_with_pause_zero(freq):
    signal = tone(3.0, SR, freq=freq, amp=0.5)
    cuts = [0, 10_007, 23_311, 40_000, 55_555, signal.shape[0]]  # arbitrary phases
    pieces = [signal[a:b] for a, b in itertools.pairwise(cuts)]
    result = stitch(pieces, [0] * (len(pieces) - 1), SR, fade_ms=FADE_MS)
    own = _max_step(signal)
    assert max(_seam_steps(result)) <= 1.1 * own
    # Neither a dip nor a bulge: the level stays that of the sine through every crossfade.
    body = result.audio[SR // 10 : -SR // 10]
    assert np.abs(body).max() <= 0.5 * 1.05


def test_independent_chunks_with_mismatched_phase_do_not_step_at_pause_zero():
    """Chunks generated independently end and start at unrelated points of the waveform."""
    rng = np.random.default_rng(1)
    pieces = [tone(0.7, SR, freq=180.0, amp=0.5, phase=rng.uniform(0, 2 * np.pi)) for _ in range(6)]
    own = _max_step(pieces[0])
    naive = np.concatenate(pieces)
    assert _max_step(naive) > 5 * own  # the seams a plain concatenation would have
    result = stitch(pieces, [0] * 5, SR, fade_ms=FADE_MS)
    assert max(_seam_steps(result)) <= 1.5 * own


def test_chunks_ending_at_full_amplitude_do_not_click_into_pauses():
    # Cut exactly at a crest and add a DC offset: a plain join would step by about 0.6.
    piece = tone(0.5, SR, freq=200.0, amp=0.4, phase=np.pi / 2) + np.float32(0.2)
    pieces = [piece, piece[: 6000 - 30], piece]
    own = _max_step(piece)
    result = stitch(pieces, [120, 600], SR, fade_ms=FADE_MS)
    assert _max_step(result.audio) <= 1.2 * own
    # The file itself starts and ends at (nearly) zero rather than on a step.
    assert abs(result.audio[0]) < 0.01 and abs(result.audio[-1]) < 0.01


def test_spans_and_length_with_pauses_are_exact():
    pieces = [tone(1.0, SR), tone(0.5, SR), tone(0.25, SR)]
    result = stitch(pieces, [250, 600], SR)
    assert result.audio.dtype == np.float32
    assert result.audio.shape[0] == SR * (1.0 + 0.5 + 0.25) + round(SR * 0.85)
    assert result.spans == [(0.0, 1.0), (1.25, 1.75), (2.35, 2.6)]
    assert result.duration_seconds == pytest.approx(2.6)
    # Pauses are digital silence; the chunks' middles are copied untouched.
    assert not result.audio[SR + 1 : SR + round(0.25 * SR) - 1].any()
    np.testing.assert_array_equal(result.audio[1000:20000], pieces[0][1000:20000])


def test_pause_zero_overlaps_by_the_fade():
    fade = round(SR * FADE_MS / 1000)
    pieces = [tone(1.0, SR), tone(1.0, SR)]
    result = stitch(pieces, [0], SR, fade_ms=FADE_MS)
    assert result.audio.shape[0] == 2 * SR - fade
    assert result.spans[1][0] == pytest.approx((SR - fade) / SR)


def test_uncorrelated_material_keeps_its_power_through_the_crossfade():
    rng = np.random.default_rng(3)
    pieces = [(rng.standard_normal(SR) * 0.1).astype(np.float32) for _ in range(40)]
    result = stitch(pieces, [0] * 39, SR, fade_ms=20.0)
    fade = round(SR * 0.02)
    regions = [result.audio[round(s * SR) : round(s * SR) + fade] for s, _ in result.spans[1:]]
    crossfade_rms = np.sqrt(np.mean(np.square(np.concatenate(regions))))
    assert 20 * np.log10(crossfade_rms / 0.1) == pytest.approx(0.0, abs=0.5)


def test_short_and_empty_segments_and_single_segment():
    pieces = [tone(0.5, SR), np.zeros(0, dtype=np.float32), tone(0.002, SR), tone(0.5, SR)]
    result = stitch(pieces, [0, 0, 0], SR)
    assert len(result.spans) == 4
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() <= 1.0
    single = stitch([tone(0.5, SR)], [], SR)
    assert single.audio.shape[0] == SR // 2 and single.spans == [(0.0, 0.5)]
    assert stitch([], [], SR).audio.shape[0] == 0


def test_inputs_are_not_modified():
    pieces = [tone(0.3, SR), tone(0.3, SR)]
    copies = [p.copy() for p in pieces]
    stitch(pieces, [100], SR)
    for piece, copy in zip(pieces, copies, strict=True):
        np.testing.assert_array_equal(piece, copy)


def test_fade_zero_is_a_plain_join():
    signal = tone(1.0, SR)
    result = stitch([signal[:9000], signal[9000:]], [0], SR, fade_ms=0)
    np.testing.assert_array_equal(result.audio, signal)


@pytest.mark.parametrize(
    ("segments", "pauses"),
    [([np.zeros(10)] * 3, [0]), ([np.zeros(10)] * 2, [-5]), ([np.zeros((10, 2))], [])],
)
def test_invalid_arguments(segments, pauses):
    with pytest.raises(ValueError):
        stitch(segments, pauses, SR)
