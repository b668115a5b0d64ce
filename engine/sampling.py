"""Sampling math on a logits vector: temperature, top-k, top-p, entropy.

All functions take and return 1-D float tensors over the vocabulary (shape ``[V]``) and never run the model, so a
page can re-shape a cached distribution as sliders move.
"""

from __future__ import annotations

import math

import torch


def softmax_with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Return ``softmax(logits / T)``; ``T <= 0`` means greedy (all mass on the arg-max, ties split evenly).

    Args:
        logits: ``[V]`` raw scores.
        temperature: ``T``; 1 leaves the model's distribution unchanged.
    """
    logits = logits.double()
    if temperature <= 0 or not math.isfinite(temperature):
        top = logits.max()
        winners = (logits == top).double()
        return (winners / winners.sum()).float()
    return torch.softmax(logits / temperature, dim=-1).float()


def top_k_mask(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``[V]`` mask of the ``k`` most likely tokens; ``k <= 0`` or ``k >= V`` keeps everything.

    Ties at the boundary are broken by token id (lower id wins), matching ``torch.topk`` on CPU for stable results.
    """
    vocab = probs.shape[-1]
    if k <= 0 or k >= vocab:
        return torch.ones(vocab, dtype=torch.bool)
    order = torch.argsort(probs, descending=True, stable=True)
    mask = torch.zeros(vocab, dtype=torch.bool)
    mask[order[:k]] = True
    return mask


def top_p_mask(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Boolean ``[V]`` mask of the smallest set of most likely tokens whose mass reaches ``p`` (nucleus).

    The most likely token is always kept, so ``p <= 0`` behaves like greedy; ``p >= 1`` keeps everything.
    """
    vocab = probs.shape[-1]
    if p >= 1.0:
        return torch.ones(vocab, dtype=torch.bool)
    order = torch.argsort(probs, descending=True, stable=True)
    sorted_probs = probs[order].double()
    before = torch.cumsum(sorted_probs, dim=0) - sorted_probs  # mass strictly above each token
    keep_sorted = before < p
    keep_sorted[0] = True
    mask = torch.zeros(vocab, dtype=torch.bool)
    mask[order[keep_sorted]] = True
    return mask


def filtered_distribution(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """The distribution actually sampled from: temperature, then top-k, then top-p, then renormalise.

    Returns:
        ``[V]`` probabilities summing to 1.
    """
    probs = softmax_with_temperature(logits, temperature)
    mask = top_k_mask(probs, top_k) & top_p_mask(probs, top_p)
    kept = torch.where(mask, probs, torch.zeros_like(probs)).double()
    return (kept / kept.sum()).float()


def entropy_bits(probs: torch.Tensor) -> float:
    """Shannon entropy in bits of a ``[V]`` distribution (0 log 0 counts as 0)."""
    p = probs.double()
    nz = p[p > 0]
    return float(-(nz * torch.log2(nz)).sum())


def sample_token(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """Draw one token id from ``probs`` (``[V]``) with an optional seeded generator."""
    return int(torch.multinomial(probs.double(), 1, generator=generator))
