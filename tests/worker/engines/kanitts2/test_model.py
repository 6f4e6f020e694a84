"""Loader and forward pass of the KaniTTS2 LM on the tiny checkpoint."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from worker.engines.base import ChunkRequest
from worker.engines.kanitts2.model import load_kanitts2
from worker.engines.kanitts2.positions import frame_positions
from worker.engines.kanitts2.prompt import build_prompt

INCREMENTAL_ATOL = 1e-4
"""fp32 on CPU: a cached step and a full forward differ only by summation order."""


def test_loader_reads_kanitts2_config(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    spec = model.spec
    assert spec.tokens.audio_start == 64410 and spec.tokens.end_of_speech == 64402
    assert spec.tokens.start_of_human == 64403 and spec.tokens.pad == 64407
    assert spec.use_learnable_rope and (spec.alpha_min, spec.alpha_max) == (0.1, 2.0)
    assert spec.language_tags == ("en_us", "en_gb")
    assert sorted(model.model.learnable_rope_layers.keys()) == ["2", "4"]
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tokenizer("hello")["input_ids"][0] == 1


def _copy_with(tiny_checkpoint: Path, tmp_path: Path, edit) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, target)
    state = load_file(str(target / "model.safetensors"))
    edit(state)
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.pop("model.speaker_emb_projection.weight"),
        lambda s: s.pop("model.learnable_rope_layers.4.alpha_weight"),
        lambda s: s.__setitem__("model.extra.weight", torch.zeros(2)),
    ],
    ids=["missing-speaker-projection", "missing-rope-alpha", "unexpected-weight"],
)
def test_missing_or_unexpected_weights_are_errors(tiny_checkpoint: Path, tmp_path: Path, edit) -> None:
    broken = _copy_with(tiny_checkpoint, tmp_path, edit)
    with pytest.raises(ValueError, match="does not match"):
        load_kanitts2(str(broken))


def test_checkpoint_without_audio_tokens_start_loads_with_the_derived_layout(
    tiny_lm, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The published config.json may leave audio_tokens_start out; the loader derives it (64410)."""
    target = tmp_path / "plain"
    shutil.copytree(tiny_checkpoint, target)
    config = json.loads((target / "config.json").read_text())
    del config["audio_tokens_start"]
    (target / "config.json").write_text(json.dumps(config))
    model, _ = load_kanitts2(str(target))
    assert model.spec == tiny_lm[0].spec
    assert model.spec.tokens.audio_start == 64410


def _sequence(model, tokenizer, text: str, frames: int, seed: int, speaker: bool) -> list[int]:
    ids = model.spec.tokens
    rng = np.random.default_rng(seed)
    audio = rng.integers(0, ids.codebook_size, size=(frames, 4))
    return build_prompt(tokenizer, ids, text, language_tag="en_us", with_speaker=speaker, context_frames=audio)


def _batch(rows: list[list[int]], pad: int):
    width = max(map(len, rows))
    items = torch.full((len(rows), width), pad)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        items[b, width - len(row) :] = torch.tensor(row)
        mask[b, width - len(row) :] = 1
    return items, mask


def test_incremental_decoding_matches_full_forward(tiny_lm) -> None:
    """Prefill + one cached step per token gives the full forward's logits, left padding included."""
    model, tokenizer = tiny_lm
    spec = model.spec
    rows = [
        _sequence(model, tokenizer, "The quick brown fox.", 3, 1, speaker=True),
        _sequence(model, tokenizer, "Hello there, how are you today my friend?", 2, 2, speaker=False),
    ]
    items, mask = _batch(rows, spec.tokens.pad)
    pos = frame_positions(items, mask, audio_start=spec.tokens.audio_start, tokens_per_frame=4, audio_step=0.5)
    speaker = torch.nn.functional.normalize(torch.randn(2, 128, generator=torch.Generator().manual_seed(3)), dim=-1)
    with torch.inference_mode():
        full = model.logits(items, mask, pos, speaker=speaker)
        prefill = items.shape[1] - 9
        cache = model.new_cache()
        steps = [model.logits(items[:, :prefill], mask[:, :prefill], pos[:, :prefill], speaker=speaker, cache=cache)]
        for t in range(prefill, items.shape[1]):
            steps.append(model.logits(items[:, t : t + 1], mask[:, : t + 1], pos[:, t : t + 1], cache=cache))
    incremental = torch.cat(steps, dim=1)
    valid = mask.bool()
    assert torch.allclose(full[valid], incremental[valid], atol=INCREMENTAL_ATOL, rtol=0)


def test_learnable_rope_and_speaker_change_the_output(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    spec = model.spec
    row = _sequence(model, tokenizer, "Rope test.", 2, 5, speaker=True)
    items, mask = _batch([row], spec.tokens.pad)
    pos = frame_positions(items, mask, audio_start=spec.tokens.audio_start, tokens_per_frame=4, audio_step=1.0)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 128, generator=gen), torch.randn(1, 128, generator=gen)
    with torch.inference_mode():
        base = model.logits(items, mask, pos, speaker=a)[0, -1]
        other_speaker = model.logits(items, mask, pos, speaker=b)[0, -1]
        alpha = model.model.learnable_rope_layers["4"].alpha_weight
        saved = alpha.clone()
        alpha.add_(2.0)
        try:
            other_rope = model.logits(items, mask, pos, speaker=a)[0, -1]
        finally:
            alpha.copy_(saved)
    assert (base - other_speaker).abs().max() > 1e-3
    assert (base - other_rope).abs().max() > 1e-3


def test_without_learnable_rope_matches_transformers_lfm2(tmp_path: Path) -> None:
    """Our forward is transformers' LFM2 plus the additions: with plain RoPE and no speaker, on text
    (positions 0..T-1) it gives Lfm2ForCausalLM's logits for the same weights."""
    from transformers import Lfm2ForCausalLM

    from tests.fixtures.kanitts2_tiny import tiny_config, write_checkpoint

    checkpoint = write_checkpoint(tmp_path / "plain", {**tiny_config(), "use_learnable_rope": False}, seed=4)
    ours, tokenizer = load_kanitts2(str(checkpoint))
    assert ours.model.learnable_rope_layers is None
    theirs = Lfm2ForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    ids = torch.tensor([tokenizer("en_us: the quick brown fox jumps over the lazy dog")["input_ids"]])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        expected = theirs(input_ids=ids, attention_mask=mask).logits
        got = ours.logits(ids, mask, torch.arange(ids.shape[1])[None].float())
    assert torch.allclose(got, expected, atol=INCREMENTAL_ATOL, rtol=0)


def _deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
    kinds = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
    return [
        f"{w.category.__name__} {w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, kinds)
    ]


def test_forward_and_generation_raise_no_deprecation_warnings(tiny_lm, tiny_engine) -> None:
    """pytest's filterwarnings hides DeprecationWarning, and a deprecated argument of a layer is reported
    at transformers' own call site (nn.Module dispatch), not ours: so every warning raised while our
    code runs counts, whoever it is attributed to."""
    model, tokenizer = tiny_lm
    spec = model.spec
    items, mask = _batch([_sequence(model, tokenizer, "Warnings test.", 2, 9, speaker=True)], spec.tokens.pad)
    pos = frame_positions(items, mask, audio_start=spec.tokens.audio_start, tokens_per_frame=4, audio_step=1.0)
    speaker = torch.nn.functional.normalize(torch.randn(1, 128, generator=torch.Generator().manual_seed(9)), dim=-1)
    requests = [ChunkRequest(key=f"w{seq}", text="Hi.", seq=seq) for seq in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.inference_mode():
            cache = model.new_cache()
            model.logits(items[:, :-1], mask[:, :-1], pos[:, :-1], speaker=speaker, cache=cache)
            model.logits(items[:, -1:], mask, pos[:, -1:], cache=cache)
        results = list(tiny_engine.generate(requests))
    assert len(results) == 2
    assert _deprecations(caught) == []
