"""Sampling on the device: the distribution transformers' warpers give, noise that depends on the row only."""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from worker.engines.kanitts2.sampling import distribution, exponential_noise, noise_columns, row_keys, sample, seed_key


def _filters(batch: int, width: int, *, temperature: float, top_k: int, top_p: float, penalty: float) -> dict:
    return {
        "bias": torch.zeros(width),
        "inv_temperature": torch.full((batch, 1), 1.0 / temperature),
        "outside_k": (torch.arange(width)[None, :] >= top_k).expand(batch, -1)
        if top_k
        else torch.zeros(batch, width, dtype=torch.bool),
        "top_p": torch.full((batch, 1), top_p),
        "penalty": torch.full((batch, 1), penalty),
        "inv_penalty": torch.full((batch, 1), 1.0 / penalty),
    }


def test_distribution_matches_transformers_warpers() -> None:
    """Penalty, temperature, top-k, top-p in transformers' order: the same kept tokens and probabilities."""
    torch.manual_seed(0)
    batch, width = 4, 300
    logits = torch.randn(batch, width) * 3
    seen_ids = torch.randint(0, width, (batch, 20))
    seen = torch.zeros(batch, width, dtype=torch.bool).scatter(1, seen_ids, True)
    probs, order = distribution(
        logits, seen=seen, **_filters(batch, width, temperature=0.8, top_k=50, top_p=0.9, penalty=1.3)
    )
    ours = torch.zeros_like(probs).scatter(1, order, probs)
    ours = ours / ours.sum(dim=1, keepdim=True)
    scores = RepetitionPenaltyLogitsProcessor(1.3)(seen_ids, logits.clone())
    for warper in (TemperatureLogitsWarper(0.8), TopKLogitsWarper(50), TopPLogitsWarper(0.9)):
        scores = warper(seen_ids, scores)
    theirs = torch.softmax(scores, dim=-1)
    assert torch.equal(ours > 0, theirs > 0)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_draws_follow_the_distribution_and_stay_in_the_top_k() -> None:
    batch, width = 4000, 8
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.05, 0.03, 0.01, 0.005, 0.005])).expand(batch, -1)
    keys = row_keys(seed_key(torch.arange(batch)), torch.zeros(batch, dtype=torch.long))
    noise = exponential_noise(keys, noise_columns(width, torch.device("cpu")))
    filters = _filters(batch, width, temperature=1.0, top_k=3, top_p=1.0, penalty=1.0)
    draws = sample(logits, seen=torch.zeros(batch, width, dtype=torch.bool), noise=noise, **filters)
    counts = torch.bincount(draws, minlength=width).float() / batch
    assert counts[3:].sum() == 0  # never outside the top 3
    torch.testing.assert_close(counts[:3], torch.tensor([0.4, 0.3, 0.2]) / 0.9, atol=0.03, rtol=0)


def test_noise_depends_on_seed_and_counter_only() -> None:
    columns = noise_columns(4033, torch.device("cpu"))
    seeds = torch.tensor([7, 8, 7, 123456789012])
    counters = torch.tensor([0, 0, 5, 0])
    together = exponential_noise(row_keys(seed_key(seeds), counters), columns)
    for i in range(4):
        alone = exponential_noise(row_keys(seed_key(seeds[i : i + 1]), counters[i : i + 1]), columns)
        assert torch.equal(alone[0], together[i])
    assert not torch.equal(together[0], together[1]) and not torch.equal(together[0], together[2])
    assert bool((together > 0).all()) and abs(together.mean().item() - 1.0) < 0.05  # Exp(1)
