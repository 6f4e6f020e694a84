"""Carry between chunks: last-sentence frame estimate, its bounds, serialisation without pickle."""

from __future__ import annotations

import io

import numpy as np
import pytest

from worker.engines.kanitts2.context import MAX_CONTEXT_SECONDS, StreamContext, context_text, next_context


def _frames(n: int) -> np.ndarray:
    return np.arange(n * 4, dtype=np.int64).reshape(n, 4) % 4032


def test_last_sentence_frames_by_character_share() -> None:
    text = "A first sentence here. Last one."
    ctx = next_context(
        text=text,
        last_sentence="Last one.",
        frames=_frames(40),
        previous=None,
        sentences=1,
        tail_frames=28,
        frames_per_second=12.5,
    )
    assert ctx.text == "Last one."
    assert len(ctx.frames) == round(40 * len("Last one.") / len(text))
    np.testing.assert_array_equal(ctx.frames, _frames(40)[-len(ctx.frames) :])
    np.testing.assert_array_equal(ctx.tail, _frames(40)[-28:])


def test_tail_spans_previous_chunks_when_this_one_is_short() -> None:
    previous = StreamContext(text="x", frames=_frames(2), tail=_frames(10))
    ctx = next_context(
        text="Short.",
        last_sentence="Short.",
        frames=_frames(3) + 7,
        previous=previous,
        sentences=1,
        tail_frames=8,
        frames_per_second=12.5,
    )
    np.testing.assert_array_equal(ctx.tail, np.concatenate([_frames(10), _frames(3) + 7])[-8:])
    assert len(ctx.frames) == 3  # the whole chunk is its last sentence


def test_context_too_long_for_the_prompt_is_dropped_but_codec_tail_kept() -> None:
    too_many = int(MAX_CONTEXT_SECONDS * 12.5) + 5
    ctx = next_context(
        text="One long sentence.",
        last_sentence="One long sentence.",
        frames=_frames(too_many),
        previous=None,
        sentences=1,
        tail_frames=28,
        frames_per_second=12.5,
    )
    assert ctx.text == "" and len(ctx.frames) == 0 and len(ctx.tail) == 28


def test_context_sentences() -> None:
    text = "First one. Second one. Third one."
    assert context_text(text, "Third one.", 0) == ""
    assert context_text(text, "Third one.", 1) == "Third one."
    assert context_text(text, "", 2) == "Second one. Third one."


def test_carry_round_trip_is_plain_npz() -> None:
    ctx = StreamContext(text="Ünïcode sentence.", frames=_frames(3), tail=_frames(5))
    data = ctx.to_bytes()
    back = StreamContext.from_bytes(data)
    assert back.text == ctx.text
    np.testing.assert_array_equal(back.frames, ctx.frames)
    np.testing.assert_array_equal(back.tail, ctx.tail)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        assert sorted(archive.files) == ["frames", "tail", "text", "version"]
    with pytest.raises(ValueError):
        StreamContext.from_bytes(b"not a carry")
