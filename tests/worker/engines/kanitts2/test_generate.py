"""The batched generation loop: frame grammar, stop and caps, seeds, batch invariance."""

from __future__ import annotations

import numpy as np
import torch

from worker.engines.kanitts2.generate import BatchStats, frame_cap, generate_frames
from worker.engines.kanitts2.sampling import top_p_filter

from .rows import prompt_row

_row = prompt_row


def test_rows_are_whole_frames_within_cap_and_deterministic(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    rows = [_row(model, tokenizer, "A short line.", seed=7, max_frames=5)]
    first = generate_frames(model, rows)[0]
    again = generate_frames(model, rows)[0]
    assert first.frames.shape[1] == 4 and 1 <= len(first.frames) <= 5
    assert first.frames.min() >= 0 and first.frames.max() < 4032
    assert np.array_equal(first.frames, again.frames)
    other_seed = generate_frames(model, [_row(model, tokenizer, "A short line.", seed=8, max_frames=5)])[0]
    assert not np.array_equal(first.frames, other_seed.frames)


def test_min_frames_forces_exact_length(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    out = generate_frames(model, [_row(model, tokenizer, "Forced.", seed=1, max_frames=9, min_frames=9)])[0]
    assert out.frames.shape == (9, 4) and not out.stopped


def test_end_of_speech_stops_its_row_and_the_others_carry_on(tiny_lm, monkeypatch) -> None:
    """A row that samples end_of_speech stops (its slot frees); the other rows are unchanged.

    Random weights almost never pick end_of_speech, so the sampler is wrapped to pick it for the
    row of one seed as soon as the grammar allows it; the model and the rest of the loop are real.
    """
    import worker.engines.kanitts2.decoder as decoder

    model, tokenizer = tiny_lm
    eos = model.spec.tokens.codebook_size
    rows = [
        _row(model, tokenizer, "This row continues.", seed=20, speaker=3, max_frames=6),
        _row(model, tokenizer, "This row stops.", seed=21, max_frames=6, min_frames=2),
        _row(model, tokenizer, "So does this one, to the cap.", seed=22, max_frames=5),
    ]
    alone = [generate_frames(model, [row])[0] for row in (rows[0], rows[2])]
    real_sample = decoder.sample

    def sample_with_stop(logits, *, bias, **kw):
        choice = real_sample(logits, bias=bias, **kw)
        if choice.shape[0] > 1 and bias.dim() == 2 and bool(bias[1, eos] == 0):  # slot 1 may stop now
            choice[1] = eos
        return choice

    monkeypatch.setattr(decoder, "sample", sample_with_stop)
    outputs = generate_frames(model, rows)
    assert outputs[1].stopped and outputs[1].frames.shape == (2, 4)
    assert not outputs[0].stopped and not outputs[2].stopped
    assert np.array_equal(outputs[0].frames, alone[0].frames) and len(outputs[0].frames) == 6
    assert np.array_equal(outputs[2].frames, alone[1].frames) and len(outputs[2].frames) == 5


def test_each_row_of_a_batch_matches_the_chunk_alone(tiny_lm) -> None:
    """Different prompt lengths, speakers, samplers and context: batching changes no token."""
    model, tokenizer = tiny_lm
    rows = [
        _row(model, tokenizer, "The quick brown fox jumps.", seed=11, speaker=1, max_frames=7),
        _row(model, tokenizer, "Hi.", seed=12, max_frames=4, temperature=0.6, top_p=0.8),
        _row(
            model,
            tokenizer,
            "Chapter one, it was a bright cold day in April.",
            seed=13,
            speaker=2,
            context=3,
            max_frames=6,
            repetition_penalty=1.5,
        ),
        _row(model, tokenizer, "Greedy row.", seed=14, max_frames=5, temperature=0.0),
    ]
    batched = generate_frames(model, rows)
    for row, out in zip(rows, batched, strict=True):
        alone = generate_frames(model, [row])[0]
        assert np.array_equal(out.frames, alone.frames)
        assert out.stopped == alone.stopped


def test_top_p_keeps_nucleus_only() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.9, 0.03, 0.02]])
    kept = top_p_filter(probs, torch.tensor([0.7, 0.5]))
    assert torch.equal(kept[0], torch.tensor([0.5, 0.3, 0.0, 0.0]))
    assert torch.count_nonzero(kept[1]) == 1 and kept[1, 1] == 0.9


def test_frame_cap_bounds() -> None:
    assert frame_cap("x" * 140, 10.0, 12.5) == int(np.ceil((1.6 * 17.5 + 3.0) * 12.5))
    assert frame_cap("x" * 5000, 0.0, 12.5) == 500  # never past the 40 s training maximum
    assert frame_cap("", 0.0, 12.5) >= 1


def test_bf16_model_runs_the_same_loop(tiny_checkpoint, tiny_lm) -> None:
    """The GPU dtype path (bf16 weights, fp32 positions/RoPE/sampling) on CPU: valid frames, and
    first-step audio logits close to fp32 (bf16 keeps ~3 significant digits)."""
    from worker.engines.kanitts2.generate import AudioHead
    from worker.engines.kanitts2.model import load_kanitts2
    from worker.engines.kanitts2.positions import frame_positions

    model16, tokenizer = load_kanitts2(str(tiny_checkpoint), dtype=torch.bfloat16)
    model32, _ = tiny_lm
    assert model16.model.rotary_emb.inv_freq.dtype == torch.float32
    row = _row(model16, tokenizer, "Half precision.", seed=3, speaker=1, context=2, max_frames=4)
    out = generate_frames(model16, [row])[0]
    assert out.frames.shape[1] == 4 and 1 <= len(out.frames) <= 4
    items = torch.tensor([row.items])
    mask = torch.ones_like(items)
    pos = frame_positions(items, mask, audio_start=64410, tokens_per_frame=4, audio_step=1.0)
    speaker = torch.tensor(row.speaker)[None]
    with torch.inference_mode():
        h16 = model16.hidden(items, mask, pos, speaker=speaker)[:, -1]
        h32 = model32.hidden(items, mask, pos, speaker=speaker)[:, -1]
        l16, l32 = AudioHead(model16)(h16, 0), AudioHead(model32)(h32, 0)
    assert l16.dtype == torch.float32
    assert (l16 - l32).abs().max() < 0.05 * l32.abs().max()


def test_continuous_batching_gives_every_row_its_tokens_alone(tiny_lm) -> None:
    """More rows than slots, mixed lengths: rows join freed slots mid-run and still get exactly the
    tokens they get alone with the same seed."""
    model, tokenizer = tiny_lm
    lengths = [9, 2, 3, 7, 2, 5, 4]
    rows = [
        _row(
            model,
            tokenizer,
            f"Row number {i} of the mixed set.",
            seed=30 + i,
            speaker=i % 2 or None,
            max_frames=n,
            min_frames=n,
            context=i % 3,
        )
        for i, n in enumerate(lengths)
    ]
    stats = BatchStats()
    batched = generate_frames(model, rows, slots=3, stats=stats)
    assert stats.prefills > 1  # rows were admitted while others ran
    for row, out in zip(rows, batched, strict=True):
        assert np.array_equal(out.frames, generate_frames(model, [row])[0].frames)


def test_slots_refill_at_once_while_waves_wait_for_their_longest_row(tiny_lm) -> None:
    """One long row and short ones in two slots: with slots the short rows cycle through the free
    slot while the long one runs; with waves each wave waits for its longest row."""
    model, tokenizer = tiny_lm
    rows = [
        _row(model, tokenizer, f"Line {i}.", seed=40 + i, max_frames=n, min_frames=n)
        for i, n in enumerate([12, 3, 3, 3, 3])
    ]
    slots, waves = BatchStats(), BatchStats()
    by_slots = generate_frames(model, rows, slots=2, stats=slots)
    by_waves = generate_frames(model, rows, slots=2, schedule="waves", stats=waves)
    assert slots.frames == 12 and slots.row_steps == 24  # every frame step had both slots busy
    assert slots.occupancy == 1.0
    assert waves.frames == 12 + 3 + 3 and waves.occupancy < 0.75
    for a, b in zip(by_slots, by_waves, strict=True):
        assert np.array_equal(a.frames, b.frames)


def test_top_k_limits_the_draw_and_one_is_greedy(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    greedy = generate_frames(model, [_row(model, tokenizer, "Pick the best.", seed=1, temperature=0.0)])[0]
    top1 = generate_frames(model, [_row(model, tokenizer, "Pick the best.", seed=2, top_k=1, temperature=1.3)])[0]
    assert np.array_equal(greedy.frames, top1.frames)  # top-k 1 is greedy whatever the seed and temperature
    wide = [generate_frames(model, [_row(model, tokenizer, "Pick.", seed=s, top_k=0)])[0].frames for s in range(3)]
    assert not all(np.array_equal(wide[0], other) for other in wide[1:])


def test_the_longest_rows_go_first_so_a_list_does_not_end_with_one_row_alone(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    rows = [
        _row(model, tokenizer, f"Line {i}.", seed=50 + i, max_frames=n, min_frames=n)
        for i, n in enumerate([3, 3, 3, 3, 12])
    ]
    stats = BatchStats()
    outputs = generate_frames(model, rows, slots=2, stats=stats)
    assert stats.frames == 12 and stats.occupancy == 1.0  # not 6 frames of short rows, then 12 alone
    assert [len(out.frames) for out in outputs] == [3, 3, 3, 3, 12]  # in the order of the rows
