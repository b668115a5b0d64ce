"""Next-token prediction views: the top candidates over the full vocabulary, ranks, and entropy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.lm import LanguageModel
from engine.sampling import entropy_bits, sample_token


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


@dataclass(frozen=True)
class Distribution:
    """One next-token distribution with its summaries computed once (shared read-only between sessions).

    A page that only changes how many candidates it shows calls :meth:`view` instead of recomputing the entropy and
    the top-k over the whole vocabulary on every rerun.

    Attributes:
        probs: ``[V]`` probabilities (softmax of the logits in float64, stored as float32).
        top: The :data:`TOP_KEPT` most likely candidates, with the entropy of the whole distribution.
    """

    probs: torch.Tensor
    top: NextTokenView

    @property
    def entropy_bits(self) -> float:
        """Shannon entropy of the whole distribution, in bits."""
        return self.top.entropy_bits

    @property
    def effective_choices(self) -> float:
        """``2 ** entropy``: as unsure as a fair pick among this many tokens."""
        return float(2.0**self.top.entropy_bits)

    def view(self, lm: LanguageModel, k: int) -> NextTokenView:
        """The top ``k`` candidates: sliced from the kept ones when possible, else computed over the vocabulary."""
        k = max(1, min(int(k), self.top.vocab_size))
        if k > len(self.top.candidates):
            return top_candidates(lm, self.probs, k)
        cands = self.top.candidates[:k]
        other = float(max(0.0, 1.0 - sum(c.prob for c in cands)))
        return NextTokenView(cands, other, self.top.entropy_bits, self.top.vocab_size)


#: How many candidates a :class:`Distribution` keeps ready (the pages' sliders stop well below this).
TOP_KEPT = 64


def distribution(lm: LanguageModel, logits: torch.Tensor) -> Distribution:
    """Summarise ``[V]`` next-token logits as a :class:`Distribution` (softmax, entropy, top candidates)."""
    probs = torch.softmax(logits.double(), dim=-1).float()  # [V]
    return Distribution(probs, top_candidates(lm, probs, TOP_KEPT))


def rank_of(probs: torch.Tensor, token_id: int) -> int:
    """1-based rank of ``token_id`` in ``probs`` (ties counted in the token's favour)."""
    return int((probs > probs[int(token_id)]).sum()) + 1


@dataclass(frozen=True)
class Probe:
    """Where a piece of text the user typed sits in a next-token distribution.

    Attributes:
        text: The text as typed (leading spaces matter: ``" Lyon"`` and ``"Lyon"`` are different tokens).
        token_ids: How the tokenizer splits it.
        pieces: Readable text of each of those tokens.
        first_rank: 1-based rank of the first token among all ``V`` candidates.
        first_prob: Probability of the first token.
    """

    text: str
    token_ids: list[int]
    pieces: list[str]
    first_rank: int
    first_prob: float

    @property
    def single_token(self) -> bool:
        """Whether the text is exactly one token (then the rank is the whole answer)."""
        return len(self.token_ids) == 1


def probe(lm: LanguageModel, probs: torch.Tensor, text: str) -> Probe | None:
    """Rank of ``text``'s first token in ``probs`` (``[V]``), or ``None`` when ``text`` has no tokens.

    Args:
        lm: The model (for its tokenizer).
        probs: Next-token probabilities over the whole vocabulary.
        text: What the user typed, e.g. ``" Lyon"``.
    """
    ids = lm.encode(text)
    if not ids:
        return None
    first = int(ids[0])
    return Probe(text, ids, lm.token_texts(ids), rank_of(probs, first), float(probs[first]))


def continuation_probs(lm: LanguageModel, context_ids: list[int], cont_ids: list[int]) -> list[float]:
    """p(each token of ``cont_ids`` | context and the tokens before it): the chain rule, in one forward pass.

    Args:
        lm: The model.
        context_ids: Non-empty context.
        cont_ids: The continuation to score.

    Returns:
        One probability per continuation token; their product is p(continuation | context).
    """
    if not cont_ids:
        return []
    seq = list(context_ids) + list(cont_ids[:-1])
    logits = lm.forward(seq).logits[len(context_ids) - 1 :]  # [len(cont), V]: row j predicts cont_ids[j]
    logp = torch.log_softmax(logits.double(), dim=-1)
    return [float(torch.exp(logp[j, int(t)])) for j, t in enumerate(cont_ids)]


def union_top_ids(before: torch.Tensor, after: torch.Tensor, k: int = 8, target: int | None = None) -> list[int]:
    """Ids in either ``[V]`` distribution's top ``k`` (and ``target``), most likely first under either one."""
    ids: list[int] = []
    for probs in (after, before):
        for i in torch.topk(probs, k).indices.tolist():
            if i not in ids:
                ids.append(int(i))
    if target is not None and target not in ids:
        ids.append(int(target))
    ids.sort(key=lambda i: -float(max(before[i], after[i])))
    return ids


@dataclass(frozen=True)
class Step:
    """One token appended by hand to a text: how it was chosen and what the model thought of it then."""

    token_id: int
    text: str
    how: str  # "greedy", "sampled" or "picked"
    prob: float
    rank: int
    entropy: float


def take_step(lm: LanguageModel, probs: torch.Tensor, entropy: float, how: str, token_id: int | None = None,
              draw: int = 0) -> Step:
    """Choose the next token from ``probs`` (``[V]``): the arg-max (``"greedy"``), a seeded draw (``"sampled"``,
    seed ``draw`` so a fresh start replays the same draws) or the given ``token_id`` (``"picked"``)."""
    if how == "greedy":
        token_id = int(torch.argmax(probs))
    elif how == "sampled":
        token_id = sample_token(probs, torch.Generator().manual_seed(int(draw)))
    elif token_id is None:
        raise ValueError("A picked step needs a token id.")
    token_id = int(token_id)
    return Step(token_id, lm.token_text(token_id), how, float(probs[token_id]), rank_of(probs, token_id),
                float(entropy))
