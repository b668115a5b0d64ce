""""Try it" challenges: short tasks a teacher can set on a concept page, each checked on the learner's own input.

Every check is a pure function of plain values a page already has (the shared prompt, a page's bound widget values)
and returns a :class:`Check`: done or not, and what was measured, in plain text. A check that needs a model result
accepts it precomputed (``dist=``, ``score=``, …) so the app can hand it the page's cached result instead of running
the model again; without it, the check computes it itself (that is how the tests call them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine import context as ctx
from engine import embeddings as emb
from engine import prompting, sampling, scoring
from engine.lm import LanguageModel, checked_ids
from engine.predict import Distribution, distribution
from engine.text import token_label


@dataclass(frozen=True)
class Challenge:
    """One task.

    Attributes:
        id: Stable identifier (``page_name``).
        page: Stem of the page it belongs to.
        task: What to do, in one or two plain sentences (Markdown).
        rule: Exactly how it is checked (Markdown), so the "done" state is never a mystery.
    """

    id: str
    page: str
    task: str
    rule: str


@dataclass(frozen=True)
class Check:
    """The result of a check: ``done``, and what was measured on the learner's input (plain text)."""

    done: bool
    measured: str


def _pct(p: float) -> str:
    return f"{p:.1%}" if p >= 1e-3 else f"{p:.1e}"


# ------------------------------------------------------------------------------------------------ next token
#: The probability a top token needs for :func:`confident_prompt`.
CONFIDENT_P = 0.9


def _distribution(lm: LanguageModel, prompt: str, dist: Distribution | None) -> Distribution:
    return dist if dist is not None else distribution(lm, lm.next_token_logits(checked_ids(lm, prompt)))


def paris_dethroned(lm: LanguageModel, prompt: str, dist: Distribution | None = None) -> Check:
    """The prompt mentions France, yet the most likely next token is not ``" Paris"``."""
    top = _distribution(lm, prompt, dist).top.candidates[0]
    france = "france" in prompt.lower()
    said = f"Top next token: {token_label(top.text)} at {_pct(top.prob)}."
    if not france:
        return Check(False, said + " The prompt does not mention France yet.")
    return Check(top.text != " Paris", said)


def confident_prompt(lm: LanguageModel, prompt: str, dist: Distribution | None = None) -> Check:
    """The most likely next token has a probability above :data:`CONFIDENT_P`."""
    top = _distribution(lm, prompt, dist).top.candidates[0]
    return Check(top.prob > CONFIDENT_P, f"Top next token: {token_label(top.text)} at {_pct(top.prob)}.")


# ------------------------------------------------------------------------------------------------ tokenization
#: Characters (spaces not counted) a one-token word needs for :func:`long_one_token_word`.
LONG_WORD_CHARS = 8


def long_one_token_word(lm: LanguageModel, text: str, ids: Sequence[int] | None = None) -> Check:
    """The text is one word (a leading space allowed) of at least :data:`LONG_WORD_CHARS` characters, and one
    ordinary (not special) token."""
    ids = list(ids) if ids is not None else lm.encode(text)
    word = text.strip()
    said = f"{len(word)} characters (spaces not counted), {len(ids)} token{'s' if len(ids) != 1 else ''}."
    if not word or any(ch.isspace() for ch in word):
        return Check(False, f"{said} Type a single word, no spaces inside.")
    if len(ids) == 1 and lm.is_special(ids[0]):
        return Check(False, f"{said} That is a special control token, not a word.")
    return Check(len(ids) == 1 and len(word) >= LONG_WORD_CHARS, said)


def more_tokens_than_characters(lm: LanguageModel, text: str, ids: Sequence[int] | None = None) -> Check:
    """More tokens than characters (Unicode code points)."""
    ids = list(ids) if ids is not None else lm.encode(text)
    chars = len(text)
    return Check(len(ids) > chars > 0, f"{chars} character{'s' if chars != 1 else ''} (code points), {len(ids)} "
                 f"token{'s' if len(ids) != 1 else ''}.")


# ------------------------------------------------------------------------------------------------ temperature
#: "The samples stop making sense": the chance a draw comes from outside the model's own top tokens.
NONSENSE_TOP = 100
NONSENSE_SHARE = 0.5
#: :func:`tamed_temperature`: a high temperature, and the top token this likely again after the cuts.
TAME_MIN_T = 1.5
TAME_P = 0.9


def outside_top_share(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                      top: int = NONSENSE_TOP) -> float:
    """Probability that one draw (after temperature, top-k, top-p) is a token the model itself, at T = 1, does not
    rank among its ``top`` most likely."""
    final = sampling.filtered_distribution(logits, temperature, top_k, top_p)  # [V]
    best = torch.topk(logits, min(top, logits.numel())).indices  # the model's own top, same at every T
    return max(0.0, 1.0 - float(final[best].double().sum()))


def nonsense_temperature(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Check:
    """More than :data:`NONSENSE_SHARE` of the draws come from outside the model's own top :data:`NONSENSE_TOP`."""
    share = outside_top_share(logits, temperature, top_k, top_p)
    final = sampling.filtered_distribution(logits, temperature, top_k, top_p)
    return Check(share > NONSENSE_SHARE, f"At T = {temperature:g}: {share:.0%} of draws come from outside the model's "
                 f"own top {NONSENSE_TOP}; entropy {sampling.entropy_bits(final):.1f} bits.")


def tamed_temperature(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Check:
    """Temperature at least :data:`TAME_MIN_T`, yet the top token is more than :data:`TAME_P` likely after the
    top-k / top-p cuts."""
    final = sampling.filtered_distribution(logits, temperature, top_k, top_p)
    p = float(final.max())
    said = f"At T = {temperature:g}, top-k {top_k or 'off'}, top-p {top_p:g}: the top token is drawn {p:.0%} of the time."
    return Check(temperature >= TAME_MIN_T and p > TAME_P, said)


# ------------------------------------------------------------------------------------------------ prompts
LABELS = ("positive", "negative")


def predicted_label(scores: Sequence[prompting.LabelScore]) -> tuple[str, float]:
    """The label with the highest probability (``" Positive"`` and ``" positive"`` both read as ``positive``)."""
    best = max(scores, key=lambda s: s.prob)
    return best.label.strip().lower(), best.prob


def few_shot_wrong(lm: LanguageModel, review: str, truth: str,
                   scores: Sequence[prompting.LabelScore] | None = None) -> Check:
    """The few-shot prompt's most likely label differs from the learner's ``truth`` (``positive``/``negative``)."""
    if not review.strip():
        return Check(False, "Type a review first.")
    if scores is None:
        prompt = prompting.few_shot_prompt(prompting.SENTIMENT_EXAMPLES, review)
        scores = prompting.label_probabilities(lm, prompt, prompting.SENTIMENT_LABELS)
    label, p = predicted_label(scores)
    return Check(label != truth, f"You say {truth}; few-shot picks {label} ({_pct(p)}).")


# ------------------------------------------------------------------------------------------------ context window
RECALL_WINDOW = 16
RECALL_P = 0.1


def window_recall(lm: LanguageModel, text: str, window: int, answer_word: str, p_window: float | None = None) -> Check:
    """With a window of at most :data:`RECALL_WINDOW` tokens, p(answer | what is still in view) is above
    :data:`RECALL_P`."""
    if not answer_word.strip():
        return Check(False, "Type the answer word on the page first.")
    ids = lm.encode(text)
    kept = ctx.apply_window(ids, window).kept if ids else []
    if not kept:
        return Check(False, "Type a text first.")
    if p_window is None:
        p_window = ctx.answer_probability(lm, kept, " " + answer_word.strip())
    said = f"Window {window} tokens: p('{answer_word.strip()}') = {_pct(p_window)} from the last {len(kept)} tokens."
    return Check(window <= RECALL_WINDOW and p_window > RECALL_P, said)


# ------------------------------------------------------------------------------------------------ embeddings
DEFAULT_ANALOGY = ("king", "man", "woman")


def analogy_on_top(lm: LanguageModel, a: str, b: str, c: str, expected: str, leading_space: bool = True,
                   result: emb.AnalogyResult | None = None) -> Check:
    """An analogy other than king − man + woman whose expected word is the nearest entry to a − b + c."""
    if not (a and b and c and expected):
        return Check(False, "Fill in a, b, c and the expected word.")
    if (a.lower(), b.lower(), c.lower()) == DEFAULT_ANALOGY:
        return Check(False, "That is the page's own example: find another one.")
    if result is None:
        result = emb.analogy(lm, a, b, c, 10, expected, leading_space)
    rank = result.expected_rank
    where = f"rank {rank}" if rank is not None else "not one token, or not in the list"
    return Check(rank == 1, f"{a} − {b} + {c}: '{expected}' is {where}.")


# ------------------------------------------------------------------------------------------------ pretraining
PREDICTABLE_PPL = 3.0
PREDICTABLE_MIN_TOKENS = 10
SURPRISING_PPL = 1000.0
SURPRISING_MIN_TOKENS = 5


def _score(lm: LanguageModel, text: str, score: scoring.TextScore | None) -> scoring.TextScore:
    return score if score is not None else scoring.score_checked_text(lm, text)


def predictable_text(lm: LanguageModel, text: str, score: scoring.TextScore | None = None) -> Check:
    """At least :data:`PREDICTABLE_MIN_TOKENS` tokens with a perplexity below :data:`PREDICTABLE_PPL`."""
    sc = _score(lm, text, score)
    n = len(sc.tokens)
    return Check(n >= PREDICTABLE_MIN_TOKENS and sc.perplexity < PREDICTABLE_PPL,
                 f"{n} tokens scored, perplexity {sc.perplexity:,.2f}.")


def surprising_text(lm: LanguageModel, text: str, score: scoring.TextScore | None = None) -> Check:
    """At least :data:`SURPRISING_MIN_TOKENS` tokens with a perplexity above :data:`SURPRISING_PPL`."""
    sc = _score(lm, text, score)
    n = len(sc.tokens)
    return Check(n >= SURPRISING_MIN_TOKENS and sc.perplexity > SURPRISING_PPL,
                 f"{n} tokens scored, perplexity {sc.perplexity:,.2f}.")


# ------------------------------------------------------------------------------------------------ evaluation
def b_beats_a(lm: LanguageModel, text_a: str, text_b: str, score_a: scoring.TextScore | None = None,
              score_b: scoring.TextScore | None = None) -> Check:
    """Text B has a lower perplexity than text A (truth is for the learner to judge: the model cannot)."""
    a, b = _score(lm, text_a, score_a), _score(lm, text_b, score_b)
    return Check(b.perplexity < a.perplexity, f"Perplexity of A {a.perplexity:,.2f}, of B {b.perplexity:,.2f}.")


# ------------------------------------------------------------------------------------------------ serving
SHORT_REPLY_TOKENS = 6


def stopped_for_length(served) -> Check:
    """The server cut the reply off: ``finish_reason`` is ``length``."""
    return Check(served.finish_reason == "length",
                 f"finish_reason {served.finish_reason}, {served.completion_tokens} completion tokens.")


def short_stop(served) -> Check:
    """The model ends its turn itself (``stop``) within :data:`SHORT_REPLY_TOKENS` tokens, end-of-turn included."""
    return Check(served.finish_reason == "stop" and served.completion_tokens <= SHORT_REPLY_TOKENS,
                 f"finish_reason {served.finish_reason}, {served.completion_tokens} completion tokens.")


# ------------------------------------------------------------------------------------------------ the list
CHALLENGES: dict[str, tuple[Challenge, ...]] = {
    "next_token": (
        Challenge("next_token_paris", "next_token",
                  "Write a prompt that mentions **France** but where **' Paris'** is *not* the most likely next token.",
                  "The prompt contains “France” and the top token of the next-token distribution is not ' Paris'."),
        Challenge("next_token_sure", "next_token",
                  "Find a prompt where the model is almost sure: its top next token above **90 %**.",
                  "p(top token) > 90 % over the full vocabulary."),
    ),
    "tokenization": (
        Challenge("tokenization_long_word", "tokenization",
                  "Find a word of **8 or more letters** that is a **single token**. (Hint: words usually follow a "
                  "space: try a leading space.)",
                  "The box holds one word (no spaces inside), at least 8 characters, and it is one ordinary token."),
        Challenge("tokenization_more_tokens", "tokenization",
                  "Write text that has **more tokens than characters**.",
                  "Tokens > characters, counting characters as Unicode code points."),
    ),
    "temperature": (
        Challenge("temperature_nonsense", "temperature",
                  "Find a temperature where the samples **stop making sense**.",
                  f"We call it nonsense when more than {NONSENSE_SHARE:.0%} of draws come from tokens the model "
                  f"itself, at T = 1, does not rank in its top {NONSENSE_TOP}: computed on the sliders' settings."),
        Challenge("temperature_tame", "temperature",
                  f"Keep the temperature at **{TAME_MIN_T:g} or more**, but use top-k or top-p so the top token is "
                  f"drawn more than **{TAME_P:.0%}** of the time.",
                  f"T ≥ {TAME_MIN_T:g} and the largest probability after temperature, top-k and top-p > {TAME_P:.0%}."),
    ),
    "prompts": (
        Challenge("prompts_few_shot_wrong", "prompts",
                  "Write a review in **Zero-shot vs few-shot**, say its true sentiment below, and make the "
                  "**few-shot** prompt pick the **wrong** label. (Sarcasm is a good start.)",
                  "The most likely of the label words after the few-shot prompt is not the sentiment you chose."),
    ),
    "context_window": (
        Challenge("context_window_recall", "context_window",
                  f"With the window at **{RECALL_WINDOW} tokens or fewer**, make the model still answer: p(answer) "
                  f"above **{RECALL_P:.0%}**. (Edit the text so the fact stays in view.)",
                  f"Window ≤ {RECALL_WINDOW} and p(answer | the tokens still in the window) > {RECALL_P:.0%}."),
    ),
    "embeddings": (
        Challenge("embeddings_analogy", "embeddings",
                  "Find an analogy **other than king − man + woman** where your expected word comes out **on top**.",
                  "The expected word is rank 1 among the nearest entries to a − b + c (input words excluded)."),
    ),
    "pretraining": (
        Challenge("pretraining_predictable", "pretraining",
                  f"Write a text of **{PREDICTABLE_MIN_TOKENS}+ tokens** that the model finds very predictable: "
                  f"perplexity below **{PREDICTABLE_PPL:g}**.",
                  f"At least {PREDICTABLE_MIN_TOKENS} tokens scored and perplexity < {PREDICTABLE_PPL:g}."),
        Challenge("pretraining_surprising", "pretraining",
                  f"Now the opposite: **{SURPRISING_MIN_TOKENS}+ tokens** with perplexity above "
                  f"**{SURPRISING_PPL:,.0f}**.",
                  f"At least {SURPRISING_MIN_TOKENS} tokens scored and perplexity > {SURPRISING_PPL:,.0f}."),
    ),
    "evaluation": (
        Challenge("evaluation_false_wins", "evaluation",
                  "Make **text B a false statement** that gets a **lower perplexity** than text A. Perplexity "
                  "measures predictability, not truth.",
                  "Perplexity(B) < perplexity(A). Whether B is false is for you to judge: the model cannot."),
    ),
    "using_llms": (
        Challenge("using_llms_length", "using_llms",
                  "Make the server cut the reply off: get **finish_reason `length`**.",
                  "The last response's finish_reason is length (max_tokens reached before the end-of-turn token)."),
        Challenge("using_llms_short", "using_llms",
                  f"Write a chat turn (and system prompt, if you like) that the model answers and **ends by itself** "
                  f"in **{SHORT_REPLY_TOKENS} tokens or fewer**.",
                  f"finish_reason is stop and completion_tokens ≤ {SHORT_REPLY_TOKENS} (the end-of-turn token "
                  "counts)."),
    ),
}
