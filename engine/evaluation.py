"""Evaluating generated text: BLEU (via sacrebleu) with the matching n-grams made visible, and greedy generation.

Perplexity lives in :mod:`engine.scoring` (shared with the pretraining page), so both pages report the same number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from engine.generation import greedy_text
from engine.lm import LanguageModel

MAX_NGRAM = 4
#: Longest text BLEU is computed on here (characters per hypothesis or reference).
MAX_BLEU_CHARS = 2000
MAX_REFERENCES = 5

_TOKENIZE = Tokenizer13a()
# effective_order: a short sentence with no 4-gram match still gets a score from the orders it has; the default
# exponential smoothing keeps one missing order from zeroing the whole score. Both are sacrebleu's sentence-level
# recommendations.
_BLEU = BLEU(effective_order=True)


@dataclass(frozen=True)
class BleuResult:
    """A sentence-level BLEU score and its parts.

    Attributes:
        score: BLEU, 0..100.
        counts: Matched n-grams for n = 1..4 (clipped by the most any one reference has).
        totals: n-grams in the hypothesis for n = 1..4.
        precisions: sacrebleu's (smoothed) n-gram precisions in percent.
        brevity_penalty: 1 unless the hypothesis is shorter than the closest reference.
        hyp_len: Hypothesis length in BLEU tokens.
        ref_len: Closest reference length.
        tokens: The hypothesis split the way BLEU splits it (13a tokenizer).
        match_level: For each hypothesis token, the longest matched n-gram (0 = none) it takes part in.
        matched: n → list of (n-gram text, matched count) for the matched n-grams.
    """

    score: float
    counts: list[int]
    totals: list[int]
    precisions: list[float]
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    tokens: list[str]
    match_level: list[int]
    matched: dict[int, list[tuple[str, int]]]


def bleu_tokens(text: str) -> list[str]:
    """Split ``text`` the way sacrebleu's default (13a) tokenizer does."""
    return _TOKENIZE(text.strip()).split()


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def sentence_bleu(hypothesis: str, references: Sequence[str]) -> BleuResult:
    """BLEU of one hypothesis against one or more references, with per-token match levels for highlighting.

    Args:
        hypothesis: The candidate text (e.g. the model's translation).
        references: One or more reference texts (empty ones are ignored).

    Raises:
        ValueError: If there is no non-empty reference or the hypothesis is empty.
    """
    refs = [r.strip() for r in references if r and r.strip()]
    if not refs:
        raise ValueError("Add at least one reference.")
    if not hypothesis.strip():
        raise ValueError("The candidate text is empty.")
    stat = _BLEU.sentence_score(hypothesis.strip(), refs)
    hyp = bleu_tokens(hypothesis)
    ref_toks = [bleu_tokens(r) for r in refs]
    level = [0] * len(hyp)
    matched: dict[int, list[tuple[str, int]]] = {}
    for n in range(1, MAX_NGRAM + 1):
        # Clip: an n-gram counts at most as often as it appears in any single reference (BLEU's modified precision).
        max_ref: Counter = Counter()
        for toks in ref_toks:
            for gram, c in Counter(_ngrams(toks, n)).items():
                max_ref[gram] = max(max_ref[gram], c)
        used: Counter = Counter()
        for i, gram in enumerate(_ngrams(hyp, n)):
            if used[gram] < max_ref[gram]:
                used[gram] += 1
                for j in range(i, i + n):
                    level[j] = max(level[j], n)
        matched[n] = [(" ".join(g), c) for g, c in used.items()]
    return BleuResult(
        score=float(stat.score),
        counts=list(stat.counts),
        totals=list(stat.totals),
        precisions=[float(p) for p in stat.precisions],
        brevity_penalty=float(stat.bp),
        hyp_len=int(stat.sys_len),
        ref_len=int(stat.ref_len),
        tokens=hyp,
        match_level=level,
        matched=matched,
    )


def greedy_generate(lm: LanguageModel, prompt: str, max_new_tokens: int = 40, chat: bool = False) -> str:
    """The model's greedy continuation of ``prompt`` (deterministic, so it can be cached and tested).

    Args:
        lm: The shared model.
        prompt: The user's text.
        max_new_tokens: Upper bound on generated tokens.
        chat: Wrap the prompt in the model's chat template as a user message (how the instruct model is meant to be
            used) instead of feeding the raw text.
    """
    text = lm.chat_prompt([{"role": "user", "content": prompt}]) if chat else prompt
    return greedy_text(lm, lm.encode(text), max_new_tokens)


#: Translation task the model is given (the source sentence is the user's).
TASK_TEMPLATE = "Translate this French sentence into English: « {source} »"


def parse_references(text: str) -> list[str]:
    """One reference per non-empty line, at most :data:`MAX_REFERENCES`, each cut to :data:`MAX_BLEU_CHARS`."""
    refs = [line.strip()[:MAX_BLEU_CHARS] for line in text.splitlines() if line.strip()]
    return refs[:MAX_REFERENCES]


def bleu_or_message(hypothesis: str, references: Sequence[str]) -> tuple[BleuResult | None, str | None]:
    """BLEU of the hypothesis (cut to :data:`MAX_BLEU_CHARS`), or a message to show instead (empty inputs)."""
    try:
        return sentence_bleu(hypothesis[:MAX_BLEU_CHARS], references), None
    except ValueError as err:
        return None, str(err)


def lowest_perplexity(perplexities: dict[str, float]) -> str:
    """The name with the lowest perplexity (the text the model finds most predictable; the first one on a tie).

    Raises:
        ValueError: If there is nothing to compare.
    """
    if not perplexities:
        raise ValueError("No perplexities to compare.")
    return min(perplexities, key=lambda name: perplexities[name])
