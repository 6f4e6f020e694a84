"""Frame-level position ids: exact values for every kind of item a prompt can hold."""

from __future__ import annotations

import pytest
import torch

from worker.engines.kanitts2.config import TokenIds
from worker.engines.kanitts2.positions import frame_positions, next_positions
from worker.engines.kanitts2.prompt import SPEAKER_SLOT, build_prompt, frames_to_tokens, tokens_to_frames

IDS = TokenIds()
A = IDS.audio_start


def positions(rows: list[list[int]], step: float) -> torch.Tensor:
    width = max(map(len, rows))
    items = torch.full((len(rows), width), IDS.pad)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        items[b, width - len(row) :] = torch.tensor(row)
        mask[b, width - len(row) :] = 1
    return frame_positions(items, mask, audio_start=A, tokens_per_frame=4, audio_step=step)


def frame(q0: int = 0) -> list[int]:
    return [IDS.audio_token(q, q0 + q) for q in range(4)]


PROMPT = [IDS.start_of_human, SPEAKER_SLOT, 1, 50, 60, IDS.end_of_text, IDS.end_of_human, IDS.start_of_ai]


def test_text_speaker_and_audio_frames_step_1() -> None:
    row = [*PROMPT, IDS.start_of_speech, *frame(), *frame(5), IDS.end_of_speech]
    expected = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11]
    assert positions([row], 1.0)[0].tolist() == expected


def test_fractional_audio_step_keeps_float_positions() -> None:
    row = [*PROMPT, IDS.start_of_speech, *frame(), *frame(), *frame(), IDS.end_of_speech]
    got = positions([row], 0.5)
    assert got.dtype == torch.float32
    assert got[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8] + [9.0] * 4 + [9.5] * 4 + [10.0] * 4 + [10.5]


def test_left_padding_starts_every_row_at_zero() -> None:
    short = [
        IDS.start_of_human,
        1,
        7,
        IDS.end_of_text,
        IDS.end_of_human,
        IDS.start_of_ai,
        IDS.start_of_speech,
    ]
    long = [*PROMPT, IDS.start_of_speech, *frame()]
    got = positions([short, long], 1.0)
    assert got[0].tolist() == [0.0] * (len(long) - len(short)) + [0, 1, 2, 3, 4, 5, 6]
    assert got[1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9]


def test_prefilled_context_frames_continue_like_one_utterance() -> None:
    """Context frames after start_of_speech take frame positions; the next generated frame follows them."""
    row = [*PROMPT, IDS.start_of_speech, *frame(), *frame(), *frame()]
    got = positions([row], 0.5)
    assert got[0, -12:].tolist() == [9.0] * 4 + [9.5] * 4 + [10.0] * 4
    other = torch.tensor([len(PROMPT) + 1])
    nxt = next_positions(other, torch.tensor([12]), tokens_per_frame=4, audio_step=0.5)
    assert nxt.tolist() == [10.5]
    assert next_positions(other, torch.tensor([15]), tokens_per_frame=4, audio_step=0.5).tolist() == [10.5]
    assert next_positions(other, torch.tensor([16]), tokens_per_frame=4, audio_step=0.5).tolist() == [11.0]


class _WordTokenizer:
    def __call__(self, text: str) -> dict:
        return {"input_ids": [1] + [10 + len(word) for word in text.split()]}


def test_prompt_layout_matches_training_with_speaker_and_context() -> None:
    frames = [[1, 2, 3, 4], [5, 6, 7, 8]]
    items = build_prompt(
        _WordTokenizer(),
        IDS,
        "new text",
        language_tag="EN_US",
        with_speaker=True,
        context_text="Old one.",
        context_frames=frames,
    )
    # "en_us: Old one. new text" -> BOS + 5 words
    assert items[:8] == [IDS.start_of_human, SPEAKER_SLOT, 1, 16, 13, 14, 13, 14]
    assert items[8:12] == [IDS.end_of_text, IDS.end_of_human, IDS.start_of_ai, IDS.start_of_speech]
    assert items[12:] == frames_to_tokens(frames, IDS)
    assert tokens_to_frames(items[12:], IDS).tolist() == frames


def test_tokens_of_wrong_codebook_are_rejected() -> None:
    with pytest.raises(ValueError):
        tokens_to_frames([IDS.audio_token(1, 0)] * 4, IDS)
