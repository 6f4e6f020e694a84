"""Our batched generation loop (not `GenerationMixin.generate`).

All rows start at a frame boundary right after `start_of_speech` (plus any pre-filled context frames),
so every row is at the same codebook each step. That lets the head compute only the 4032 logits of
that codebook plus `end_of_speech` (allowed only at a frame boundary) instead of 80538, and makes
the frame grammar hold by construction. One forward per step for the whole batch; each row has its
own frame positions, speaker, sampling options, seed and stop; finished rows leave the batch and
their cache rows are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from worker.engines.kanitts2.model import KaniTTS2ForCausalLM
from worker.engines.kanitts2.positions import frame_positions, next_positions
from worker.engines.kanitts2.sampling import make_generators, sample

MAX_CHUNK_SECONDS = 40.0
"""Longest clip the model saw in training; no chunk may run past it."""


def frame_cap(text: str, expected_seconds: float, frames_per_second: float) -> int:
    """Most frames a chunk may take: generous against slow speech, bounded against runaway loops.

    The chunker's estimate (or ~8 chars/s, slower than any narration) with 60 % + 3 s headroom,
    never beyond the 40 s training maximum.
    """
    seconds = max(expected_seconds, len(text.strip()) / 8.0, 0.5)
    return max(1, math.ceil(min(1.6 * seconds + 3.0, MAX_CHUNK_SECONDS) * frames_per_second))


@dataclass
class RowRequest:
    """One row of a batch: prompt items (see `prompt.build_prompt`) and how to sample it."""

    items: list[int]
    seed: int
    max_frames: int
    speaker: np.ndarray | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    min_frames: int = 1
    """Frames before `end_of_speech` may be sampled; the benchmark sets `max_frames` to force a length."""


@dataclass
class RowOutput:
    frames: np.ndarray
    """Generated codes `[T, codebooks]` (pre-filled context frames not included)."""
    stopped: bool
    """True when the model ended with `end_of_speech`, False when the frame cap cut it."""


class AudioHead:
    """Output rows of one codebook plus `end_of_speech`, cut from the tied head once per batch."""

    def __init__(self, model: KaniTTS2ForCausalLM) -> None:
        ids = model.spec.tokens
        weight = model.lm_head.weight
        eos = weight[ids.end_of_speech : ids.end_of_speech + 1]
        self.weights = [
            torch.cat([weight[ids.audio_token(q, 0) : ids.audio_token(q, 0) + ids.codebook_size], eos]).contiguous()
            for q in range(ids.num_codebooks)
        ]
        self.eos_index = ids.codebook_size

    def __call__(self, hidden: torch.Tensor, codebook: int) -> torch.Tensor:
        return torch.nn.functional.linear(hidden, self.weights[codebook]).float()


@torch.inference_mode()
def generate_frames(model: KaniTTS2ForCausalLM, rows: Sequence[RowRequest]) -> list[RowOutput]:
    """Generate audio frames for every row in one batch."""
    if not rows:
        return []
    spec = model.spec
    ids = spec.tokens
    per_frame = spec.tokens_per_frame
    device = model.lm_head.weight.device
    batch = len(rows)
    width = max(len(row.items) for row in rows)

    items = torch.full((batch, width), ids.pad, dtype=torch.long)
    mask = torch.zeros((batch, width), dtype=torch.long)
    speaker = torch.zeros((batch, spec.speaker_emb_dim), dtype=torch.float32)
    for b, row in enumerate(rows):
        items[b, width - len(row.items) :] = torch.tensor(row.items, dtype=torch.long)
        mask[b, width - len(row.items) :] = 1
        if row.speaker is not None:
            speaker[b] = torch.as_tensor(np.asarray(row.speaker, dtype=np.float32).reshape(-1))
    is_audio = (items >= ids.audio_start) & (items < ids.audio_end) & mask.bool()
    audio_count = is_audio.sum(dim=1)
    other_count = mask.sum(dim=1) - audio_count
    if bool((audio_count % per_frame != 0).any()):
        raise ValueError("pre-filled audio must be whole frames")
    vocab = ids.codebook_size * ids.num_codebooks
    seen = torch.zeros((batch, vocab), dtype=torch.bool)
    rows_idx, cols = torch.nonzero(is_audio, as_tuple=True)
    seen[rows_idx, items[rows_idx, cols] - ids.audio_start] = True

    positions = frame_positions(
        items, mask, audio_start=ids.audio_start, tokens_per_frame=per_frame, audio_step=spec.audio_step
    )
    items, mask, speaker, positions = (t.to(device) for t in (items, mask, speaker, positions))
    seen, audio_count, other_count = seen.to(device), audio_count.to(device), other_count.to(device)
    temperature = torch.tensor([r.temperature for r in rows], dtype=torch.float32, device=device)
    top_p = torch.tensor([r.top_p for r in rows], dtype=torch.float32, device=device)
    penalty = torch.tensor([r.repetition_penalty for r in rows], dtype=torch.float32, device=device)
    max_frames = torch.tensor([r.max_frames for r in rows], dtype=torch.long, device=device)
    min_frames = torch.tensor([max(1, r.min_frames) for r in rows], dtype=torch.long, device=device)
    generators = make_generators([r.seed for r in rows], device)

    head = AudioHead(model)
    cache = model.new_cache()
    hidden = model.hidden(items, mask, positions, speaker=speaker, cache=cache)[:, -1]
    active = list(range(batch))
    codes: list[list[int]] = [[] for _ in rows]
    stopped = [False] * batch
    frames_done = torch.zeros(batch, dtype=torch.long, device=device)
    eos_col = torch.zeros(ids.codebook_size + 1, dtype=torch.bool, device=device)
    eos_col[head.eos_index] = True

    step = 0
    while active:
        codebook = step % per_frame
        if codebook == 0:
            capped = frames_done >= max_frames
            if bool(capped.any()):
                keep = (~capped).nonzero(as_tuple=True)[0]
                active = [active[i] for i in keep.tolist()]
                if not active:
                    break
                cache.reorder_cache(keep)
                hidden, mask, seen, audio_count, other_count = (
                    t[keep] for t in (hidden, mask, seen, audio_count, other_count)
                )
                temperature, top_p, penalty, max_frames, min_frames, frames_done = (
                    t[keep] for t in (temperature, top_p, penalty, max_frames, min_frames, frames_done)
                )
                generators = [generators[i] for i in keep.tolist()]
        logits = head(hidden, codebook)
        allowed = ~eos_col.expand(len(active), -1)
        if codebook == 0:
            allowed = allowed | (eos_col[None, :] & (frames_done >= min_frames)[:, None])
        lo = codebook * ids.codebook_size
        seen_q = torch.cat([seen[:, lo : lo + ids.codebook_size], torch.zeros_like(seen[:, :1])], dim=1)
        choice = sample(
            logits,
            allowed=allowed,
            seen=seen_q,
            temperature=temperature,
            top_p=top_p,
            repetition_penalty=penalty,
            generators=generators,
        )
        choice_list = choice.tolist()
        finished = [i for i, c in enumerate(choice_list) if c == head.eos_index]
        for i in finished:
            stopped[active[i]] = True
        if finished:
            keep = torch.tensor(
                [i for i in range(len(active)) if i not in set(finished)], dtype=torch.long, device=device
            )
            active = [active[i] for i in keep.tolist()]
            if not active:
                break
            cache.reorder_cache(keep)
            choice, mask, seen, audio_count, other_count = (
                t[keep] for t in (choice, mask, seen, audio_count, other_count)
            )
            temperature, top_p, penalty, max_frames, min_frames, frames_done = (
                t[keep] for t in (temperature, top_p, penalty, max_frames, min_frames, frames_done)
            )
            generators = [generators[i] for i in keep.tolist()]
            choice_list = choice.tolist()
        for i, row in enumerate(active):
            codes[row].append(choice_list[i])
        seen[:, lo : lo + ids.codebook_size].scatter_(1, choice[:, None], True)
        token = choice + ids.audio_token(codebook, 0)
        position = next_positions(other_count, audio_count, tokens_per_frame=per_frame, audio_step=spec.audio_step)
        audio_count = audio_count + 1
        if codebook == per_frame - 1:
            frames_done = frames_done + 1
            if bool((frames_done >= max_frames).all()):
                break  # every row is at its cap: no need to feed the last frame
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        hidden = model.hidden(token[:, None], mask, position[:, None], cache=cache)[:, -1]
        step += 1

    outputs = []
    for b in range(batch):
        whole = len(codes[b]) - len(codes[b]) % per_frame
        frames = np.asarray(codes[b][:whole], dtype=np.int64).reshape(-1, per_frame)
        outputs.append(RowOutput(frames=frames, stopped=stopped[b]))
    return outputs
