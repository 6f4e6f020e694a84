"""The static decode path against transformers' LFM2 forward, and the compiled step against eager."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.engines.kanitts2.decoder import StaticDecoder, bucket_for
from worker.engines.kanitts2.generate import AudioHead, RowRequest, generate_frames
from worker.engines.kanitts2.positions import frame_positions
from worker.engines.kanitts2.prompt import build_prompt, frames_to_tokens

from .rows import prompt_row


def _slot_row(model, tokenizer, text: str, *, seed: int, speaker: int | None = None, context: int = 0) -> RowRequest:
    return prompt_row(
        model, tokenizer, text, seed=seed, speaker=speaker, context=context, max_frames=8, min_frames=8, temperature=1.0
    )


def _dynamic_logits(model, row: RowRequest, frames: np.ndarray, codebook: int) -> torch.Tensor:
    """The next-token audio logits of transformers' forward with its DynamicCache, token by token."""
    ids = model.spec.tokens
    sequence = torch.tensor([row.items + frames_to_tokens(frames, ids)])
    mask = torch.ones_like(sequence)
    positions = frame_positions(sequence, mask, audio_start=ids.audio_start, tokens_per_frame=4, audio_step=1.0)
    speaker = None if row.speaker is None else torch.tensor(row.speaker)[None]
    prompt = len(row.items)
    cache = model.new_cache()
    with torch.no_grad():
        hidden = model.hidden(
            sequence[:, :prompt], mask[:, :prompt], positions[:, :prompt], speaker=speaker, cache=cache
        )
        for t in range(prompt, sequence.shape[1]):
            hidden = model.hidden(sequence[:, t : t + 1], mask[:, : t + 1], positions[:, t : t + 1], cache=cache)
        return AudioHead(model)(hidden[:, -1], codebook)


def test_static_cache_equals_the_dynamic_cache(tiny_lm) -> None:
    """Rows of different prompt lengths, speakers and context prefilled together into non-adjacent
    slots: after the prefill and after each frame, the next logits equal transformers' within 1e-4
    (float32; observed ~5e-6), and the slots do not disturb each other."""
    model, tokenizer = tiny_lm
    rows = {
        1: _slot_row(model, tokenizer, "The quick brown fox jumps over the dog.", seed=1, speaker=1),
        3: _slot_row(model, tokenizer, "Hi.", seed=2, context=3),
    }
    decoder = StaticDecoder(model, slots=4, max_tokens=192, max_frames=8)
    decoder.prefill(list(rows), list(rows.values()))
    head = AudioHead(model)
    for frame in range(3):
        for slot, row in rows.items():
            done = decoder.codes[slot, :frame].numpy()
            with torch.no_grad():
                ours = head(decoder.hidden[slot : slot + 1], 0)
            reference = _dynamic_logits(model, row, done, 0)
            assert (ours - reference).abs().max().item() < 1e-4 * max(1.0, reference.abs().max().item())
        decoder.frame_step(bucket_for(4, 4))
    # A slot prefilled later, beside running rows, starts from its own prompt only.
    late = _slot_row(model, tokenizer, "A late row.", seed=3, speaker=2)
    decoder.prefill([0], [late])
    with torch.no_grad():
        ours = head(decoder.hidden[0:1], 0)
    assert (ours - _dynamic_logits(model, late, np.zeros((0, 4), np.int64), 0)).abs().max().item() < 1e-4


def test_bf16_static_path_stays_close_to_fp32(tiny_checkpoint, tiny_lm) -> None:
    """The GPU dtype (bf16 weights and cache; float32 positions, RoPE angles and sampling) on CPU."""
    from worker.engines.kanitts2.model import load_kanitts2

    model32, tokenizer = tiny_lm
    model16, _ = load_kanitts2(str(tiny_checkpoint), dtype=torch.bfloat16)
    row = _slot_row(model32, tokenizer, "Half precision, same speech.", seed=4, speaker=1, context=2)
    hidden = []
    for model in (model32, model16):
        decoder = StaticDecoder(model, slots=1, max_tokens=128, max_frames=8)
        decoder.prefill([0], [row])
        assert decoder.position.dtype == torch.float32 and decoder.kv[0].dtype == model.dtype
        with torch.no_grad():
            hidden.append(AudioHead(model)(decoder.hidden, 0))
    assert hidden[1].dtype == torch.float32
    assert (hidden[1] - hidden[0]).abs().max() < 0.05 * hidden[0].abs().max()


@pytest.mark.slow
def test_compiled_frame_step_equals_eager(tiny_lm) -> None:
    """`torch.compile` (inductor, CPU here) of the whole frame step generates the same tokens."""
    model, tokenizer = tiny_lm
    ids = model.spec.tokens
    rows = [
        RowRequest(build_prompt(tokenizer, ids, text, language_tag="en_us"), seed=i, max_frames=5 + i, temperature=t)
        for i, (text, t) in enumerate([("One two three.", 1.0), ("Greedy here.", 0.0), ("Cooler, four.", 0.7)])
    ]
    eager = generate_frames(model, rows, slots=4)
    compiled = generate_frames(model, rows, slots=4, compiled=True)
    for a, b in zip(eager, compiled, strict=True):
        assert np.array_equal(a.frames, b.frames) and a.stopped == b.stopped
