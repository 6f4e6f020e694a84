"""Per-row sampling on the device: repetition penalty, temperature, top-k, top-p, and counter-based noise.

Everything is batched, and nothing here reads a value back to the host, so a whole frame of sampling
can be captured in a CUDA graph. The noise is not drawn from a stateful generator: it is a hash of
(row seed, the row's token index, vocabulary index), so a chunk samples exactly the same tokens alone
or in any batch, in any slot, and after a crash, with one batched computation for all rows.
"""

from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF
# Odd multipliers below 2**31, so that a 32-bit value times one stays below 2**63: int64 arithmetic never
# overflows, and eager, compiled and GPU code compute the same bits.
_MUL_A = 0x7FEB352D
_MUL_B = 0x5BD1E995
_MUL_C = 0x27D4EB2F


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply rounds) of int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _MUL_A) & _M32
    x = x ^ (x >> 15)
    x = (x * _MUL_B) & _M32
    x = x ^ (x >> 13)
    x = (x * _MUL_C) & _M32
    return x ^ (x >> 16)


def seed_key(seeds: torch.Tensor) -> torch.Tensor:
    """A row's seed (any int64) mixed once, when the row is admitted."""
    return _mix32(seeds & _M32)


def row_keys(seed_keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """One 32-bit key per row and step from the row's `seed_key` and its own token counter (int64)."""
    return _mix32((seed_keys + counters * 0x61C88647) & _M32)


def noise_columns(width: int, device: torch.device) -> torch.Tensor:
    """The per-vocabulary-index constants `exponential_noise` mixes in (computed once per decoder)."""
    return (torch.arange(width, device=device, dtype=torch.int64) * 0x9E3779B1) & _M32


def exponential_noise(keys: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Exp(1) noise `[..., width]` (float32): the value at (row, v) depends only on that row's key and v."""
    bits = _mix32(keys[..., None] ^ columns)
    uniform = ((bits >> 8).float() + 0.5) * (1.0 / 16777216.0)  # (0, 1), 24 bits
    return -torch.log(uniform)


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


def distribution(
    logits: torch.Tensor,
    *,
    bias: torch.Tensor,
    seen: torch.Tensor,
    inv_temperature: torch.Tensor,
    outside_k: torch.Tensor,
    top_p: torch.Tensor,
    penalty: torch.Tensor,
    inv_penalty: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What each row samples from: probabilities in descending order `[B, K]` and that order.

    `bias` is 0 or -inf per index (the grammar), `seen` the row's earlier codes of this codebook,
    `inv_temperature`, `top_p`, `penalty` and `inv_penalty` are `[B, 1]`, `outside_k` `[B, K]` marks
    ranks past the row's top-k (greedy rows use top-k 1). The order of the filters is transformers'
    (penalty, temperature, top-k, then top-p on the renormalised top-k), so a row samples from the
    distribution the reference's `generate` samples from. One sort per step; the per-frame constants
    are prepared by the caller so that a step issues few operators.
    """
    # CTRL-style penalty (as transformers applies it) on the codes the row has produced.
    factor = torch.where(logits < 0, penalty, inv_penalty)
    logits = torch.where(seen, logits * factor, logits)
    ordered, order = ((logits + bias) * inv_temperature).sort(dim=-1, descending=True)
    probs = torch.softmax(ordered.masked_fill(outside_k, float("-inf")), dim=-1)
    probs = probs.masked_fill((probs.cumsum(dim=-1) - probs) >= top_p, 0.0)
    return probs, order


def sample(logits: torch.Tensor, *, noise: torch.Tensor, **filters: torch.Tensor) -> torch.Tensor:
    """One index per row of `logits` `[B, K]` (float32), drawn from `distribution(logits, **filters)`.

    Exponential race: argmax p / E with E ~ Exp(1) draws from p (the kept mass need not sum to 1).
    The noise is indexed by vocabulary id, so the draw does not depend on how the sort broke ties.
    """
    probs, order = distribution(logits, **filters)
    picked = torch.argmax(probs / noise.gather(1, order), dim=-1, keepdim=True)
    return order.gather(1, picked).view(-1)
