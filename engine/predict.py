"""Next-token prediction views: the top candidates over the full vocabulary, ranks, and entropy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.lm import LanguageModel
from engine.sampling import entropy_bits


@dataclass(frozen=True)
class Candidate:
    """One candidate next token."""

    token_id: int
    text: str
    prob: float
    rank: int  # 1 = most likely


@dataclass(frozen=True)
class NextTokenView:
    """The top-k of p(next token | prompt) and what the rest of the vocabulary holds."""

    candidates: list[Candidate]
    other_mass: float
    entropy_bits: float
    vocab_size: int


def top_candidates(lm: LanguageModel, probs: torch.Tensor, k: int = 10) -> NextTokenView:
    """Summarise a ``[V]`` distribution as its top ``k`` tokens plus the mass outside them.

    Args:
        lm: The model (for token texts).
        probs: Probabilities over the whole vocabulary.
        k: How many candidates to list (clipped to 1..V).
    """
    k = max(1, min(int(k), probs.shape[-1]))
    values, indices = torch.topk(probs.double(), k)
    cands = [
        Candidate(int(i), lm.token_text(int(i)), float(v), r + 1) for r, (v, i) in enumerate(zip(values, indices))
    ]
    return NextTokenView(cands, float(max(0.0, 1.0 - values.sum())), entropy_bits(probs), probs.shape[-1])


def rank_of(probs: torch.Tensor, token_id: int) -> int:
    """1-based rank of ``token_id`` in ``probs`` (ties counted in the token's favour)."""
    return int((probs > probs[int(token_id)]).sum()) + 1
