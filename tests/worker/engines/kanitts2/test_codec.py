"""NanoCodec wrapper on a tiny codec with the real decoder's structure, loaded from a `.nemo` file."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.nanocodec_tiny import build_tiny_nanocodec

pytestmark = pytest.mark.slow

RECEPTIVE_FIELD_FRAMES = 28
"""Derived from the decoder layers (7*7*6*3*2 up-sampling, res kernels 3/7/11 with dilations 1/3/5,
pre-conv 7, post-conv 3); the real NanoCodec has the same layers, so the same value."""
EXACT = 1e-5
"""Batched, padded and continued decodes run the same arithmetic in a different order: float32
rounding differences only (observed below 1e-7 on samples of magnitude up to 1)."""


@pytest.fixture(scope="module")
def tiny_nemo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_nanocodec(tmp_path_factory.mktemp("nanocodec") / "tiny.nemo")


@pytest.fixture(scope="module")
def codec(tiny_nemo: Path):
    from worker.engines.kanitts2.codec import NanoCodec

    return NanoCodec.load(str(tiny_nemo))


def random_codes(frames: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4032, (4, frames), generator=generator)


def test_load_reports_the_codec_geometry(codec) -> None:
    assert codec.sample_rate == 22050
    assert codec.samples_per_frame == 1764
    assert codec.num_codebooks == 4
    assert codec.codebook_size == 9 * 8 * 8 * 7
    assert codec.receptive_field_frames == RECEPTIVE_FIELD_FRAMES


def test_decode_uses_the_checkpoint_weights(codec, tiny_nemo: Path) -> None:
    from nemo.collections.tts.models import AudioCodecModel

    reference = AudioCodecModel.restore_from(str(tiny_nemo), map_location=torch.device("cpu")).eval()
    codes = random_codes(12, seed=1)
    with torch.inference_mode():
        expected, _ = reference.decode(tokens=codes[None], tokens_len=torch.tensor([12]))
    (audio,) = codec.decode([codes])
    np.testing.assert_allclose(audio, expected[0].numpy(), atol=EXACT)
    assert np.abs(audio).max() > 1e-3  # real signal, not silence


def _rewrite_weights(source: Path, target: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    """A copy of the `.nemo` archive `source` whose weights `edit` changed in place."""
    with tarfile.open(source) as original, tarfile.open(target, "w") as copy:
        for member in original.getmembers():
            data = original.extractfile(member) if member.isfile() else None
            if data is not None and member.name.endswith("model_weights.ckpt"):
                state = torch.load(data, weights_only=True)
                edit(state)
                buffer = io.BytesIO()
                torch.save(state, buffer)
                member.size = buffer.tell()
                buffer.seek(0)
                data = buffer
            copy.addfile(member, data)
    return target


def _old_weight_norm_names(state: dict[str, torch.Tensor]) -> None:
    """Store weight norm as NeMo before parametrizations did: `X.weight_g` / `X.weight_v`."""
    for key in [k for k in state if ".parametrizations.weight.original" in k]:
        name = "weight_g" if key.endswith("original0") else "weight_v"
        state[key.split(".parametrizations.")[0] + "." + name] = state.pop(key)


def test_load_refuses_a_checkpoint_missing_decoder_weights(tiny_nemo: Path, tmp_path: Path) -> None:
    from worker.engines.kanitts2.codec import NanoCodec

    broken = _rewrite_weights(
        tiny_nemo, tmp_path / "broken.nemo", lambda state: state.pop("audio_decoder.post_conv.conv.bias")
    )
    with pytest.raises(ValueError, match=re.escape("audio_decoder.post_conv.conv.bias")):
        NanoCodec.load(str(broken))


def test_old_weight_norm_names_load_and_decode_the_same_samples(codec, tiny_nemo: Path, tmp_path: Path) -> None:
    from worker.engines.kanitts2.codec import NanoCodec

    old = _rewrite_weights(tiny_nemo, tmp_path / "old.nemo", _old_weight_norm_names)
    with tarfile.open(old) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("model_weights.ckpt"))
        names = set(torch.load(archive.extractfile(member), weights_only=True))
    assert "audio_decoder.post_conv.conv.weight_g" in names
    assert not any("parametrizations" in name for name in names)

    codes = [random_codes(12, seed=21), random_codes(5, seed=22)]
    for got, expected in zip(NanoCodec.load(str(old)).decode(codes), codec.decode(codes), strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s.pop("audio_decoder.post_conv.conv.weight_v"), "post_conv.conv.parametrizations.weight.original1"),
        (
            lambda s: s.__setitem__(
                "audio_decoder.post_conv.conv.weight_x", s.pop("audio_decoder.post_conv.conv.weight_v")
            ),
            "audio_decoder.post_conv.conv.weight_x",
        ),
    ],
    ids=["missing", "renamed"],
)
def test_old_names_still_fail_on_a_missing_or_renamed_tensor(
    tiny_nemo: Path, tmp_path: Path, edit: Callable[[dict[str, torch.Tensor]], None], named: str
) -> None:
    from worker.engines.kanitts2.codec import NanoCodec

    def old_and_broken(state: dict[str, torch.Tensor]) -> None:
        _old_weight_norm_names(state)
        edit(state)

    broken = _rewrite_weights(tiny_nemo, tmp_path / "broken.nemo", old_and_broken)
    with pytest.raises(ValueError, match=re.escape(named)):
        NanoCodec.load(str(broken))


def test_rows_come_back_with_exact_lengths_as_float32(codec) -> None:
    rows = [random_codes(n, seed=n) for n in (3, 0, 9)]
    audio = codec.decode(rows)
    assert [a.shape for a in audio] == [(3 * 1764,), (0,), (9 * 1764,)]
    assert all(a.dtype == np.float32 for a in audio)
    assert all(np.isfinite(a).all() and np.abs(a).max(initial=0) <= 1.0 for a in audio)


def test_right_padded_batch_decodes_each_row_as_if_alone(codec) -> None:
    rows = [random_codes(n, seed=10 + n) for n in (4, 17, 30)]
    batched = codec.decode(rows)
    for row, together in zip(rows, batched, strict=True):
        (alone,) = codec.decode([row])
        np.testing.assert_allclose(together, alone, atol=EXACT)


def test_a_frame_influences_no_samples_beyond_the_receptive_field(codec) -> None:
    frames, spf, changed_at = 50, codec.samples_per_frame, 10
    codes = random_codes(frames, seed=2)
    perturbed = codes.clone()
    perturbed[:, changed_at] = (perturbed[:, changed_at] + 1000) % codec.codebook_size
    base, other = codec.decode([codes, perturbed])
    per_frame = np.abs(base - other).reshape(frames, spf).max(axis=1)

    assert per_frame[:changed_at].max() == 0.0  # causal: nothing earlier moves
    assert per_frame[changed_at] > 1e-3
    reach = int(np.nonzero(per_frame > 0)[0].max()) - changed_at
    # the bound holds, and it is tight (not a loose over-estimate that would waste decode work)
    assert RECEPTIVE_FIELD_FRAMES - 3 <= reach <= codec.receptive_field_frames


def test_left_context_continues_the_previous_chunk_without_a_seam(codec) -> None:
    spf = codec.samples_per_frame
    previous, current = random_codes(40, seed=3), random_codes(20, seed=4)
    (whole,) = codec.decode([torch.cat([previous, current], dim=1)])
    tail = whole[previous.shape[1] * spf :]

    enough, all_of_it, too_little = codec.decode(
        [current] * 3,
        left_context=[previous[:, -codec.receptive_field_frames :], previous, previous[:, -2:]],
    )
    np.testing.assert_allclose(enough, tail, atol=EXACT)
    np.testing.assert_allclose(all_of_it, tail, atol=EXACT)
    # with too little context the start of the chunk differs: the context is what removes the seam
    assert np.abs(too_little - tail).max() > 1e-4


def test_rows_mix_with_and_without_context(codec) -> None:
    previous, current, fresh = random_codes(30, seed=5), random_codes(8, seed=6), random_codes(8, seed=7)
    with_context, without = codec.decode([current, fresh], left_context=[previous, None])
    np.testing.assert_allclose(with_context, codec.decode([current], [previous])[0], atol=EXACT)
    np.testing.assert_allclose(without, codec.decode([fresh])[0], atol=EXACT)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (torch.zeros((3, 5), dtype=torch.long), r"\[4, T\]"),
        (torch.full((4, 5), 4032, dtype=torch.long), "outside"),
        (torch.full((4, 5), -1, dtype=torch.long), "outside"),
        (torch.zeros((4, 5)), "integer"),
    ],
)
def test_malformed_codes_are_refused(codec, row: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec.decode([row])


def test_context_list_must_match_rows(codec) -> None:
    with pytest.raises(ValueError, match="left contexts"):
        codec.decode([random_codes(3, seed=0)], left_context=[None, None])


def test_bfloat16_decode_stays_close_to_float32(tiny_nemo: Path, codec) -> None:
    from worker.engines.kanitts2.codec import NanoCodec

    reduced = NanoCodec.load(str(tiny_nemo), dtype=torch.bfloat16)
    codes = random_codes(10, seed=8)
    (exact,) = codec.decode([codes])
    (approx,) = reduced.decode([codes])
    assert approx.dtype == np.float32
    relative_rms = np.sqrt(np.mean((approx - exact) ** 2) / np.mean(exact**2))
    assert relative_rms < 0.02


def test_a_non_causal_decoder_is_refused() -> None:
    from nemo.collections.tts.modules.audio_codec_modules import HiFiGANDecoder

    from worker.engines.kanitts2.codec import causal_receptive_field_frames

    decoder = HiFiGANDecoder(input_dim=16, up_sample_rates=[2, 2], base_channels=8)
    with pytest.raises(ValueError, match="not a causal decoder"):
        causal_receptive_field_frames(decoder)


def test_importing_the_codec_module_loads_no_torch() -> None:
    code = "import sys, worker.engines.kanitts2.codec; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[4]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
