"""Frame-level position ids of KaniTTS2.

Position of item i = (non-audio items before i) + floor(audio tokens before i / tokens_per_frame)
* audio_step: the tokens of one audio frame share a position and a frame advances by `audio_step`
(fractional in some checkpoints, so positions stay float32 and never go through bf16). The speaker
slot is a non-audio item. Counting starts at 0 at `start_of_human` in every row, so left padding
(masked items) shifts nothing.
"""

from __future__ import annotations

import torch


def frame_positions(
    items: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    audio_start: int,
    tokens_per_frame: int,
    audio_step: float,
) -> torch.Tensor:
    """Positions `[B, T]` (float32) of prompt items `[B, T]`; padded items get 0."""
    valid = attention_mask.bool()
    is_audio = (items >= audio_start) & valid
    is_other = ~is_audio & valid
    other_before = torch.cumsum(is_other.long(), dim=1) - is_other.long()
    audio_before = torch.cumsum(is_audio.long(), dim=1) - is_audio.long()
    frames_before = torch.div(audio_before, tokens_per_frame, rounding_mode="floor")
    positions = other_before.float() + frames_before.float() * audio_step
    return torch.where(valid, positions, torch.zeros_like(positions))


def next_positions(
    other_count: torch.Tensor, audio_count: torch.Tensor, *, tokens_per_frame: int, audio_step: float
) -> torch.Tensor:
    """Position `[B]` of the next audio token given the non-audio and audio items already in each row."""
    frames = torch.div(audio_count, tokens_per_frame, rounding_mode="floor")
    return other_count.float() + frames.float() * audio_step
