"""Sampling math on a logits vector: temperature, top-k, top-p, entropy.

All functions take and return 1-D float tensors over the vocabulary (shape ``[V]``) and never run the model, so a
page can re-shape a cached distribution as sliders move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    The most likely token is always kept, so ``p <= 0`` behaves like greedy; ``p >= 1`` keeps everything. Ties are
    ordered by token id (lower id first). A token is kept when the mass strictly above it is still short of ``p``; a
    tolerance of 1e-6 absorbs float rounding, so ``[0.5, 0.3, 0.2]`` with ``p = 0.8`` keeps exactly two tokens.
    """
    vocab = probs.shape[-1]
    if p >= 1.0:
        return torch.ones(vocab, dtype=torch.bool)
    order = torch.argsort(probs, descending=True, stable=True)
    sorted_probs = probs[order].double()
    before = torch.cumsum(sorted_probs, dim=0) - sorted_probs  # mass strictly above each token
    keep_sorted = before < p - 1e-6
    keep_sorted[0] = True
    mask = torch.zeros(vocab, dtype=torch.bool)
    mask[order[keep_sorted]] = True
    return mask


@dataclass(frozen=True)
class CutResult:
    """What temperature, top-k and top-p do to one next-token distribution.

    Attributes:
        scaled: ``[V]`` ``softmax(logits / T)`` before any cut.
        keep_k: ``[V]`` bool, tokens top-k keeps (all ``True`` when top-k is off).
        keep_p: ``[V]`` bool, tokens that survive top-p *after* top-k (top-p is applied to the renormalised top-k
            distribution, as Hugging Face ``generate`` does); a subset of ``keep_k``.
        final: ``[V]`` the distribution actually sampled from: ``scaled`` restricted to ``keep_p``, renormalised.
        removed_by_k: Probability mass (of ``scaled``) that the top-k cut throws away.
        removed_by_p: Further mass (of ``scaled``) that the top-p cut throws away after top-k.
    """

    scaled: torch.Tensor
    keep_k: torch.Tensor
    keep_p: torch.Tensor
    final: torch.Tensor
    removed_by_k: float
    removed_by_p: float

    @property
    def kept(self) -> int:
        """How many tokens can still be sampled."""
        return int(self.keep_p.sum())


def apply_cuts(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> CutResult:
    """Temperature, then top-k, then top-p on the renormalised top-k distribution, then renormalise.

    Args:
        logits: ``[V]`` raw scores.
        temperature: ``T`` (``<= 0`` is greedy).
        top_k: Keep the ``k`` most likely tokens (``<= 0`` or ``>= V`` keeps all).
        top_p: Keep the smallest set of most likely tokens whose mass reaches ``p`` (``>= 1`` keeps all).
    """
    scaled = softmax_with_temperature(logits, temperature)  # [V]
    keep_k = top_k_mask(scaled, top_k)
    after_k = torch.where(keep_k, scaled, torch.zeros_like(scaled)).double()
    after_k = after_k / after_k.sum()  # [V] renormalised over the top-k
    keep_p = top_p_mask(after_k.float(), top_p) & keep_k
    kept = torch.where(keep_p, scaled, torch.zeros_like(scaled)).double()
    total = float(scaled.double().sum())
    mass_k = float(scaled.double()[keep_k].sum())
    mass_p = float(kept.sum())
    return CutResult(
        scaled=scaled,
        keep_k=keep_k,
        keep_p=keep_p,
        final=(kept / kept.sum()).float(),
        removed_by_k=max(0.0, total - mass_k),
        removed_by_p=max(0.0, mass_k - mass_p),
    )


def filtered_distribution(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """The distribution actually sampled from: temperature, then top-k, then top-p, then renormalise.

    See :func:`apply_cuts` for the exact order (top-p is measured on the renormalised top-k distribution).

    Returns:
        ``[V]`` probabilities summing to 1.
    """
    return _final_distribution(logits, float(temperature), int(top_k), float(top_p))


def _final(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    # The same steps as apply_cuts, without the bookkeeping the pages display (generation calls this per token).
    scaled = softmax_with_temperature(logits, temperature)  # [V]
    keep_k = top_k_mask(scaled, top_k)
    after_k = torch.where(keep_k, scaled, torch.zeros_like(scaled)).double()
    after_k = after_k / after_k.sum()
    keep_p = top_p_mask(after_k.float(), top_p) & keep_k
    kept = torch.where(keep_p, scaled, torch.zeros_like(scaled)).double()
    return (kept / kept.sum()).float()


try:
    # Compiled: a generating session then takes Python's lock once per token here, not once per tensor op, so
    # other busy sessions cannot stall it between ops.
    _final_distribution = torch.jit.script(_final)
except Exception:  # noqa: BLE001 - the plain function computes the same thing
    _final_distribution = _final


def entropy_bits(probs: torch.Tensor) -> float:
    """Shannon entropy in bits of a ``[V]`` distribution (0 log 0 counts as 0)."""
    p = probs.double()
    # xlogy(p, p) is p·ln p with 0·ln 0 = 0, without building a masked copy; ln → bits at the end.
    return max(0.0, float(-torch.special.xlogy(p, p).sum()) / math.log(2))  # max(): a one-hot gives -0.0


def sample_token(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """Draw one token id from ``probs`` (``[V]``) with an optional seeded generator."""
    return int(torch.multinomial(probs.double(), 1, generator=generator))


def effective_choices(probs: torch.Tensor) -> float:
    """``2 ** entropy``: the number of equally likely tokens that would be as uncertain as ``probs`` (perplexity)."""
    return float(2.0 ** entropy_bits(probs))


def choose(probs: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row of ``probs`` (``[B, V]`` or ``[V]``): arg-max when ``temperature <= 0``, else sample.

    Returns:
        ``[B]`` (or scalar) token ids.
    """
    if temperature <= 0:
        return torch.argmax(probs, dim=-1)
    return torch.multinomial(probs.double(), 1, generator=generator).squeeze(-1)


def filtered_distribution_batch(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """:func:`filtered_distribution` for a batch of rows at once (one sort per batch instead of two per row).

    Same rules as :func:`apply_cuts`: temperature, top-k, top-p on the renormalised top-k, renormalise; ties are
    ordered by token id.

    Args:
        logits: ``[B, V]`` raw scores.

    Returns:
        ``[B, V]`` probabilities, each row summing to 1.
    """
    logits = logits.double()
    vocab = logits.shape[-1]
    if temperature <= 0 or not math.isfinite(temperature):  # greedy: the arg-max takes it all (ties split)
        winners = (logits == logits.max(dim=-1, keepdim=True).values).double()  # [B, V]
        probs = winners / winners.sum(-1, keepdim=True)
    else:
        probs = torch.softmax(logits / temperature, dim=-1)  # [B, V]
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)  # [B, V] each
    keep = torch.ones_like(sorted_probs, dtype=torch.bool)
    if 0 < top_k < vocab:
        keep[:, top_k:] = False
    if top_p < 1.0:
        after_k = sorted_probs * keep
        after_k = after_k / after_k.sum(-1, keepdim=True)  # renormalised over the top-k
        before = torch.cumsum(after_k, dim=-1) - after_k  # mass strictly above each token
        keep_p = before < top_p - 1e-6
        keep_p[:, 0] = True
        keep &= keep_p
    kept_sorted = sorted_probs * keep
    kept_sorted = kept_sorted / kept_sorted.sum(-1, keepdim=True)
    return torch.zeros_like(probs).scatter(-1, order, kept_sorted).float()  # back to token-id order


@dataclass(frozen=True)
class SamplingView:
    """One next-token distribution under the sampling settings, ready to draw: what the temperature page shows.

    Attributes:
        cut: Temperature, top-k and top-p applied to the logits.
        order: The ``shown`` most likely token ids (the same order at every ``T > 0``).
        curves: Temperature → probability of each token of ``order`` (the chosen ``T`` included).
        status: Per token of ``order``: ``"kept"``, ``"top-k"`` (cut by top-k) or ``"top-p"`` (cut by top-p).
        entropy_before: Bits after temperature, before the cuts.
        entropy_after: Bits of the distribution actually sampled from.
    """

    cut: CutResult
    order: list[int]
    curves: dict[float, list[float]]
    status: list[str]
    entropy_before: float
    entropy_after: float

    @property
    def effective_before(self) -> float:
        """``2 ** entropy_before``: as random as a fair pick among this many tokens (after temperature)."""
        return float(2.0 ** self.entropy_before)

    @property
    def effective_after(self) -> float:
        """``2 ** entropy_after``: the same for the distribution actually sampled from (after the cuts)."""
        return float(2.0 ** self.entropy_after)

    def formula_rows(self, logits: torch.Tensor, temperature: float, n: int = 5) -> list[dict]:
        """``z``, ``z / T`` and ``p`` at ``T = 1`` and at ``temperature`` for the ``n`` most likely tokens."""
        at_t, at_1 = softmax_with_temperature(logits, temperature), softmax_with_temperature(logits, 1.0)
        return [
            {"id": i, "z": float(logits[i]), "z/T": float(logits[i]) / temperature if temperature > 0 else math.inf,
             "p1": float(at_1[i]), "pT": float(at_t[i])}
            for i in self.order[:n]
        ]


#: Temperature regimes, in the order the temperature page lists them. T = 1 is not "high": it is the model's own
#: distribution, unchanged (softmax(z / 1) = softmax(z)).
REGIMES = ("greedy", "low", "own", "high")


def temperature_regime(temperature: float) -> str:
    """Which regime ``temperature`` is in: ``"greedy"`` (T = 0), ``"low"`` (0 < T < 1), ``"own"`` (T = 1: the
    model's own distribution) or ``"high"`` (T > 1: flatter than the model's own)."""
    t = float(temperature)
    if t <= 0:
        return "greedy"
    if math.isclose(t, 1.0):
        return "own"
    return "low" if t < 1 else "high"


def sampling_view(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, shown: int,
                  overlay: tuple[float, ...] = (0.5, 1.0, 2.0)) -> SamplingView:
    """:func:`apply_cuts` on ``[V]`` logits, plus the ``shown`` top tokens under each temperature of ``overlay``."""
    cut = apply_cuts(logits, temperature, top_k, top_p)
    order = [int(i) for i in torch.topk(logits, shown).indices]
    curves = {t: [float(v) for v in softmax_with_temperature(logits, t)[order]] for t in overlay}
    curves[float(temperature)] = [float(v) for v in cut.scaled[order]]
    status = ["kept" if cut.keep_p[i] else ("top-k" if not cut.keep_k[i] else "top-p") for i in order]
    return SamplingView(cut, order, curves, status, entropy_bits(cut.scaled), entropy_bits(cut.final))
