"""Scoring text with the model: per-token log-probabilities, loss and perplexity.

Shared by the pretraining, evaluation, context-window and ML-to-LLM pages, so every page reports the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.lm import MAX_INPUT_TOKENS, LanguageModel, check_length, checked_ids


@dataclass(frozen=True)
class TokenScore:
    """How surprised the model was by one token, given everything before it."""

    position: int
    token_id: int
    text: str
    logprob: float  # natural log p(token | previous tokens)
    rank: int  # 1 = the model's top guess

    @property
    def loss(self) -> float:
        """Cross-entropy of this token in nats (−log p)."""
        return -self.logprob

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class TextScore:
    """Per-token scores of a text and their summary."""

    tokens: list[TokenScore]

    @property
    def total_logprob(self) -> float:
        """log p(text), summed over the scored tokens (the first token has no context and is not scored)."""
        return sum(t.logprob for t in self.tokens)

    @property
    def mean_loss(self) -> float:
        """Average −log p per scored token, in nats: the pretraining loss."""
        return -self.total_logprob / len(self.tokens) if self.tokens else float("nan")

    @property
    def perplexity(self) -> float:
        """exp(mean loss): how many equally likely choices the model was torn between, on average."""
        return math.exp(self.mean_loss) if self.tokens else float("nan")


def token_score(lm: LanguageModel, position: int, token: int, logits: torch.Tensor) -> TokenScore:
    """The score of ``token`` at ``position`` from the ``[V]`` logits that predicted it: log p (float64) and rank."""
    logp = torch.log_softmax(logits.double(), dim=-1)  # [V]
    return TokenScore(position, int(token), lm.token_text(int(token)), float(logp[token]),
                      int((logp > logp[token]).sum()) + 1)


def score_logits(lm: LanguageModel, ids: Sequence[int], logits: torch.Tensor) -> TextScore:
    """Score ``ids`` given the model's ``[T, V]`` logits for them (position t predicts token t+1).

    Row by row: a float64 log-softmax of the whole matrix would hold T × 393 KB at once (200 MB for 512 tokens).
    """
    ids = [int(i) for i in ids]
    return TextScore([token_score(lm, t + 1, ids[t + 1], logits[t]) for t in range(len(ids) - 1)])


def score_ids(lm: LanguageModel, ids: Sequence[int]) -> TextScore:
    """Run the model once over ``ids`` and score every token after the first."""
    return score_logits(lm, ids, lm.forward(ids).logits)


#: The token plain text is scored after. SmolLM2's tokenizer names ``<|im_start|>`` its "bos" token, but that is the
#: chat-turn marker (a role name such as ``user`` follows it); ``<|endoftext|>`` is what separates documents in the
#: pretraining data, so plain text after it reads as the start of a new document. Measured by
#: :func:`conditioning_comparison` (tests/test_engine_scoring.py).
TEXT_START_TOKEN = "<|endoftext|>"


def text_start_id(lm: LanguageModel) -> int | None:
    """The id plain text is conditioned on: :data:`TEXT_START_TOKEN` when the vocabulary has it, else the BOS token."""
    tid = lm.token_id(TEXT_START_TOKEN)
    return int(tid) if tid is not None else lm.info.bos_token_id


def text_start_name(lm: LanguageModel) -> str:
    """The conditioning token as text, for pages that say which one is used (``"none"`` if the model has none)."""
    tid = text_start_id(lm)
    return "none" if tid is None else lm.raw_token(tid)


def with_text_start(lm: LanguageModel, ids: Sequence[int]) -> list[int]:
    """``ids`` after the document-start token, so the first real token gets scored too (given only that token)."""
    tid = text_start_id(lm)
    return ([tid] if tid is not None else []) + [int(i) for i in ids]


#: Older name, kept for callers outside the scoring pages: the same document-start token (not the chat marker).
with_bos = with_text_start


def score_text(lm: LanguageModel, text: str, prefix_bos: bool = True) -> TextScore:
    """Score ``text``. With ``prefix_bos`` the first real token is scored too, given only the document-start token."""
    ids = lm.encode(text)
    return score_ids(lm, with_text_start(lm, ids) if prefix_bos else ids)


@dataclass(frozen=True)
class ConditioningRow:
    """How one choice of conditioning token scores a text.

    Attributes:
        choice: The token put before the text (``"none"``: nothing, so the first token is not scored).
        first_loss: Loss of the text's first token, in nats (``nan`` when nothing comes before it).
        perplexity: Perplexity over every token this choice can score.
        rest_perplexity: Perplexity over the tokens every choice scores (all but the first): a fair comparison.
    """

    choice: str
    first_loss: float
    perplexity: float
    rest_perplexity: float


#: The conditioning comparison reads at most this many tokens of the text (three extra passes stay cheap).
CONDITIONING_TOKENS = 64


def conditioning_comparison(lm: LanguageModel, text: str, max_tokens: int = CONDITIONING_TOKENS
                            ) -> list[ConditioningRow]:
    """Score the first ``max_tokens`` tokens of ``text`` after ``<|endoftext|>``, after ``<|im_start|>`` and after
    nothing: how the choice of start token changes the first token's loss and the perplexity.

    Raises:
        engine.lm.InputError: Fewer than 2 tokens, or too long.
    """
    ids = checked_ids(lm, text, MAX_INPUT_TOKENS - 1, "text", at_least=2)[: max(2, int(max_tokens))]
    rows = []
    for name in (TEXT_START_TOKEN, "<|im_start|>", "none"):
        tid = None if name == "none" else lm.token_id(name)
        if name != "none" and tid is None:
            continue
        sc = score_ids(lm, ([tid] if tid is not None else []) + ids)
        rest = TextScore(sc.tokens[-(len(ids) - 1):])  # the tokens after the text's first one
        first = sc.tokens[0].loss if tid is not None else float("nan")
        rows.append(ConditioningRow(name, first, sc.perplexity, rest.perplexity))
    return rows


def extremes(score: TextScore) -> tuple[TokenScore, TokenScore]:
    """The most surprising and the least surprising token of a scored text (highest and lowest loss)."""
    if not score.tokens:
        raise ValueError("No tokens were scored.")
    return max(score.tokens, key=lambda t: t.loss), min(score.tokens, key=lambda t: t.loss)


def lowest(values: Sequence[float]) -> int:
    """Index of the smallest value (the first one on a tie): the best loss among several tries."""
    if not values:
        raise ValueError("No values to compare.")
    return min(range(len(values)), key=lambda i: values[i])


def score_checked_text(lm: LanguageModel, text: str, cap: int = MAX_INPUT_TOKENS, what: str = "text") -> TextScore:
    """Every token of ``text`` scored (the first given only the document-start token), after the one input guard.

    Raises:
        engine.lm.InputError: Empty or longer than ``cap`` tokens (message ready to show).
    """
    return score_ids(lm, with_text_start(lm, checked_ids(lm, text, cap, what)))


def baseline_scores(lm: LanguageModel, text: str, seed: int = 0,
                    natural: TextScore | None = None) -> dict[str, tuple[str, TextScore]]:
    """The text, the same words shuffled, and as many uniformly random tokens: label → (shown text, score).

    Args:
        lm: The language model.
        text: The natural text.
        seed: Seed of the shuffle and of the random tokens.
        natural: ``score_checked_text(lm, text)`` when the caller already has it: a long text's pass is then not
            run again (each pass of 1,024 tokens takes ~15 s of one core on a 2-core AVX2 machine).
    """
    if natural is None:
        natural = score_checked_text(lm, text)
    shuffled_text = shuffled_words(text, seed)
    rand_ids = random_token_ids(lm, len(natural.tokens), seed)
    return {
        "Natural text": (text, natural),
        "Same words, shuffled": (shuffled_text, score_checked_text(lm, shuffled_text)),
        "Random tokens": (lm.decode(rand_ids), score_ids(lm, with_text_start(lm, rand_ids))),
    }


def answer_score(lm: LanguageModel, question: str, answer: str) -> TextScore:
    """log p(answer, then end of turn | the question as a chat user message), token by token.

    The end-of-turn token is part of the answer: "…and then stop", so a cut-off answer is penalised.
    """
    prompt_ids = lm.encode(lm.chat_prompt([{"role": "user", "content": question}]))
    answer_ids = lm.encode(answer.strip())
    if lm.info.eos_token_id is not None:
        answer_ids = answer_ids + [lm.info.eos_token_id]
    check_length(prompt_ids + answer_ids, what="question and answer together")
    return score_completion(lm, prompt_ids, answer_ids)


def score_completion(lm: LanguageModel, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> TextScore:
    """Score only ``completion_ids`` given ``prompt_ids`` before them: log p(completion | prompt), token by token.

    This is how a model's *likelihood* of an answer is measured (e.g. to compare two answers to the same prompt).

    Raises:
        ValueError: If the prompt or the completion is empty.
    """
    prompt_ids = [int(i) for i in prompt_ids]
    completion_ids = [int(i) for i in completion_ids]
    if not prompt_ids or not completion_ids:
        raise ValueError("Both the prompt and the answer need at least one token.")
    p, c = len(prompt_ids), len(completion_ids)
    # Only positions p-1 .. T-2 predict a completion token: the output layer runs for the last c+1 positions and the
    # last row (the token after the completion) is dropped. The prompt's [p, V] logits were never needed.
    logits = lm.forward(prompt_ids + completion_ids, logits_to_keep=c + 1).logits[:-1]  # [c, V]
    return TextScore([token_score(lm, p + k, token, row) for k, (token, row) in enumerate(zip(completion_ids, logits))])


def shuffled_words(text: str, seed: int = 0) -> str:
    """The same words in a random order (whitespace-separated; deterministic for a given seed).

    Used to show that the loss measures *order* and grammar, not just which words appear.
    """
    import random

    words = text.split()
    rng = random.Random(int(seed))
    if len(set(words)) > 1:
        original = list(words)
        for _ in range(10):  # avoid handing back the original order by chance
            rng.shuffle(words)
            if words != original:
                break
    return " ".join(words)


def random_token_ids(lm: LanguageModel, n: int, seed: int = 0) -> list[int]:
    """``n`` tokens drawn uniformly from the vocabulary (special tokens excluded), deterministic for a seed."""
    gen = torch.Generator().manual_seed(int(seed))
    out: list[int] = []
    while len(out) < n:
        for i in torch.randint(0, lm.vocab_size, (max(n, 8),), generator=gen).tolist():
            if not lm.is_special(i) and len(out) < n:
                out.append(int(i))
    return out
