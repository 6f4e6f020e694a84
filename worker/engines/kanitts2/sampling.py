"""Per-row sampling over the restricted audio head: repetition penalty, temperature, top-p.

Everything is batched except drawing the noise: each row owns a `torch.Generator` seeded from its
chunk, and draws the same amount of noise every step whatever else is in the batch, so a chunk
samples identically alone or in any batch (and after a crash).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def make_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """CTRL-style penalty (as transformers applies it) on the tokens a row has already produced."""
    penalty = penalty[:, None]
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def top_p_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero the tail outside each row's nucleus (the most likely token always stays)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(before >= top_p[:, None], 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def sample(
    logits: torch.Tensor,
    *,
    allowed: torch.Tensor,
    seen: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    repetition_penalty: torch.Tensor,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """One index per row of `logits` `[B, K]` (float32); rows with temperature <= 0 are greedy."""
    logits = apply_repetition_penalty(logits, seen, repetition_penalty)
    logits = logits.masked_fill(~allowed, float("-inf"))
    greedy = temperature <= 0
    scaled = logits / temperature.clamp_min(1e-5)[:, None]
    probs = top_p_filter(torch.softmax(scaled, dim=-1), top_p)
    noise = torch.empty_like(probs)
    for row, generator in enumerate(generators):
        noise[row].exponential_(generator=generator)
    # Exponential race: argmax p / E with E ~ Exp(1) draws from p (batched, no multinomial per row).
    sampled = torch.argmax(probs / noise, dim=-1)
    return torch.where(greedy, torch.argmax(logits, dim=-1), sampled)
