""""Try it" challenges: short tasks a teacher can set on a concept page, each checked on the learner's own input.

Every check is a pure function of plain values a page already has (the shared prompt, a page's bound widget values)
and returns a :class:`Check`: done or not, and what was measured, in plain text. A check that needs a model result
accepts it precomputed (``dist=``, ``score=``, …) so the app can hand it the page's cached result instead of running
the model again; without it, the check computes it itself (that is how the tests call them). A check on something
a learner starts (a fine-tune, a DPO run, generated digits or a summary) takes that result itself and never starts
one: it only reads what the page already made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine import attention as attn
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


# ------------------------------------------------------------------------------------------------ ML basics
#: :func:`regression_overfit`: how many times the training error the error on new points must reach, and the least
#: noise (without noise the curve is fitted exactly and both errors are near zero).
OVERFIT_RATIO = 2.0
OVERFIT_MIN_NOISE = 0.1


def regression_overfit(noise: float, degree: int, train_mse: float, test_mse: float) -> Check:
    """The polynomial chases the noise: its error on new points is at least :data:`OVERFIT_RATIO` × its training error.

    Args:
        noise: The data's noise (the page's slider).
        degree: The polynomial's degree.
        train_mse: Mean squared error on the 30 training points.
        test_mse: Mean squared error on 200 new points from the same curve.
    """
    ratio = test_mse / train_mse if train_mse > 0 else float("inf")
    done = noise >= OVERFIT_MIN_NOISE and ratio >= OVERFIT_RATIO
    return Check(done, f"Noise {noise:g}, degree {degree}: training error {train_mse:.3f}, error on new points "
                       f"{test_mse:.3f} ({ratio:.2f}× the training error).")


# ------------------------------------------------------------------------------------------------ the map
def quiz_all_right(chosen: Sequence[str | None], right: Sequence[str]) -> Check:
    """Every question of the map's self-check answered, and answered right.

    Args:
        chosen: The option picked for each question (None: not answered yet).
        right: The right option of each question, in the same order.
    """
    answered = sum(c is not None for c in chosen)
    correct = sum(c is not None and c == r for c, r in zip(chosen, right))
    return Check(answered == len(right) and correct == len(right),
                 f"{correct} right of {answered} answered ({len(right)} questions).")


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


# ------------------------------------------------------------------------------------------------ attention
#: :func:`previous_token_head`: the average weight on the token just before, over positions 2 onward.
PREV_HEAD_SHARE = 0.5
#: Tokens the prompt needs for :func:`previous_token_head` (so the average covers at least three positions).
PREV_HEAD_MIN_TOKENS = 5
#: :func:`focused_head`: the last token's weight on one earlier token that is neither the first token nor itself.
FOCUS_SHARE = 0.5


def _head(lm: LanguageModel, text: str, layer: int, head: int, weights: torch.Tensor | None,
          tokens: Sequence[str] | None) -> tuple[torch.Tensor, list[str]]:
    if weights is None or tokens is None:
        run = attn.run_attention(lm, checked_ids(lm, text, attn.ATTN_MAX_TOKENS, why=attn.ATTN_WHY))
        weights, tokens = attn.head_view(run.attentions, layer, head).weights, run.tokens
    return weights, list(tokens)


def previous_token_head(lm: LanguageModel, text: str, layer: int, head: int, weights: torch.Tensor | None = None,
                        tokens: Sequence[str] | None = None) -> Check:
    """In one head, positions 2 onward put on average more than :data:`PREV_HEAD_SHARE` of their attention on the
    token just before them, on a prompt of at least :data:`PREV_HEAD_MIN_TOKENS` tokens.

    Args:
        lm: The model.
        text: The prompt.
        layer: Layer index.
        head: Head index.
        weights: The head's ``[T, T]`` weights for ``text`` (the page's cached head view); computed when None.
        tokens: The prompt's tokens, with ``weights``.
    """
    weights, tokens = _head(lm, text, layer, head, weights, tokens)
    T = len(tokens)
    if T < PREV_HEAD_MIN_TOKENS:
        return Check(False, f"The prompt has {T} token{'s' if T != 1 else ''}: write one of at least "
                            f"{PREV_HEAD_MIN_TOKENS}.")
    share = float(attn.previous_token_weight(weights, start=2))  # position 1's previous token is the sink
    return Check(share > PREV_HEAD_SHARE, f"Layer {layer}, head {head}: on average {share:.0%} of each token's "
                 f"attention goes to the token just before it (positions 2 to {T - 1}).")


def focused_head(lm: LanguageModel, text: str, layer: int, head: int, weights: torch.Tensor | None = None,
                 tokens: Sequence[str] | None = None) -> Check:
    """In one head, the last token puts more than :data:`FOCUS_SHARE` of its attention on one earlier token that is
    neither the first token (the attention sink) nor itself. Arguments as :func:`previous_token_head`."""
    weights, tokens = _head(lm, text, layer, head, weights, tokens)
    T = len(tokens)
    if T < 3:
        return Check(False, f"The prompt has {T} token{'s' if T != 1 else ''}: write a longer one.")
    last = weights[-1].double()  # [T]
    pos = 1 + int(last[1:-1].argmax())  # the strongest key other than the first token and the last token itself
    share = float(last[pos])
    return Check(share > FOCUS_SHARE, f"Layer {layer}, head {head}: the last token {token_label(tokens[-1])} puts "
                 f"{share:.0%} on {token_label(tokens[pos])} (position {pos}), {float(last[0]):.0%} on the first "
                 f"token and {float(last[-1]):.0%} on itself.")


# ------------------------------------------------------------------------------------------------ encoders
#: Words this common never make a keyword match in :func:`meaning_beats_keywords`.
COMMON_WORDS = frozenset(
    "the and for are was were with this that these those from into onto has have had not but you your his her its our "
    "their they them she who what when where which than then there here all any can will would been being some very "
    "just about".split()
)
#: Shortest word that counts; a word this long or longer also matches the longer words it starts (guitar, guitarist).
WORD_MIN_LETTERS = 3
PREFIX_MIN_LETTERS = 4


def keywords(text: str) -> set[str]:
    """The words of ``text`` a keyword search would match: letters only, lower-cased, at least
    :data:`WORD_MIN_LETTERS` long, minus :data:`COMMON_WORDS`."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    return {w for w in words if len(w) >= WORD_MIN_LETTERS and w not in COMMON_WORDS}


#: Endings dropped before two words are compared (plays, played, playing → play).
ENDINGS = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    for end in ENDINGS:
        if word.endswith(end) and len(word) - len(end) >= WORD_MIN_LETTERS:
            return word[: -len(end)]
    return word


def shared_words(a: str, b: str) -> list[str]:
    """Keywords of ``a`` that ``b`` also has, sorted: the same word once an ending of :data:`ENDINGS` is dropped, or one
    starting the other when the shorter one has at least :data:`PREFIX_MIN_LETTERS` letters (guitar, guitarist)."""
    kb = {_stem(w) for w in keywords(b)}

    def match(x: str, y: str) -> bool:
        short, long_ = sorted((_stem(x), y), key=len)
        return short == long_ or (len(short) >= PREFIX_MIN_LETTERS and long_.startswith(short))

    return sorted(w for w in keywords(a) if any(match(w, v) for v in kb))


def meaning_beats_keywords(encoder, query: str, sentences: Sequence[str], hits: Sequence | None = None) -> Check:
    """Semantic search's top hit shares no word with the query (:func:`shared_words`), while another sentence does:
    a keyword search would have picked that one.

    Args:
        encoder: The sentence encoder (:class:`engine.encoder.Encoder`).
        query: What is searched for.
        sentences: The sentences searched.
        hits: Their ranking (the page's cached :func:`engine.encoder.semantic_search`); computed when None.
    """
    from engine.encoder import semantic_search

    if not query.strip() or len(sentences) < 2:
        return Check(False, "Type a query and at least two sentences on the page first.")
    hits = list(hits) if hits is not None else semantic_search(encoder, query, list(sentences))
    top = hits[0]
    top_shared = shared_words(query, top.sentence)
    said = f"Top hit: “{top.sentence}” (cosine {top.score:.2f})"
    if top_shared:
        return Check(False, f"{said} shares {', '.join(top_shared)} with the query.")
    decoys = [h for h in hits[1:] if shared_words(query, h.sentence)]
    if not decoys:
        return Check(False, f"{said} shares no word with the query, but no other sentence does either: add one that "
                            "does, for a keyword search to pick.")
    d = decoys[0]
    return Check(True, f"{said} shares no word with the query; “{d.sentence}” shares "
                       f"{', '.join(shared_words(query, d.sentence))} (rank {d.rank}, cosine {d.score:.2f}).")


def wordpiece_longer(encoder, lm: LanguageModel, text: str, comparison=None) -> Check:
    """The text is one word of letters only, and the encoder's WordPiece cuts it into more pieces than the decoder's
    byte-level BPE (``[CLS]`` and ``[SEP]`` not counted).

    Args:
        encoder: The sentence encoder.
        lm: The decoder.
        text: The page's text to tokenize.
        comparison: The page's cached :func:`engine.encoder.compare_tokenizers` of ``text``; computed when None.
    """
    from engine.encoder import compare_tokenizers

    word = text.strip()
    if not word or not word.isalpha():
        return Check(False, "Type a single word of letters only (no spaces, digits or punctuation).")
    cmp = comparison if comparison is not None else compare_tokenizers(encoder, lm, word)
    pieces, bpe = cmp.wordpiece[1:-1], cmp.bpe
    return Check(len(pieces) > len(bpe), f"WordPiece: {len(pieces)} ({' '.join(pieces)}); byte-level BPE: "
                 f"{len(bpe)} ({' '.join(token_label(t) for t in bpe)}).")


# ------------------------------------------------------------------------------------------------ fine-tuning
#: :func:`overfit_on_purpose`: how far the last validation loss must be above the lowest one (a share of it).
OVERFIT_RISE = 0.10


def overfit_on_purpose(val_points: Sequence[tuple[int, float]]) -> Check:
    """The fine-tune's last validation loss is at least :data:`OVERFIT_RISE` above its lowest point.

    Args:
        val_points: ``(step, validation loss)`` of a finished run (:attr:`engine.training.DatasetRun.val_points`),
            step 0 being before training.
    """
    from engine.training import overfitting

    curve = overfitting(val_points)  # the page's own reading of the curve: best and last points
    if curve is None:
        return Check(False, "This run has no validation curve (too few examples, or it stopped at once): use data "
                            "with a validation split.")
    best, last = curve.best_loss, curve.last_loss
    rise = last / best - 1 if best > 0 else 0.0
    return Check(rise >= OVERFIT_RISE - 1e-9, f"Validation loss lowest {best:.3f} at step {curve.best_step}, "
                 f"{last:.3f} at the last step ({curve.last_step}): {rise:+.0%} from its lowest.")


# ------------------------------------------------------------------------------------------------ rlhf
#: :func:`dpo_gentle`: the margin gain needed (nats) and the KL from the reference it must stay under (nats).
DPO_MARGIN_GAIN = 5.0
DPO_MAX_KL = 0.5


def dpo_gentle(history: Sequence) -> Check:
    """A DPO run raised the chosen-minus-rejected margin on its training pairs by at least :data:`DPO_MARGIN_GAIN`
    nats, with a KL from the reference below :data:`DPO_MAX_KL` at the end.

    Args:
        history: The run's :class:`engine.preference.DpoStep` list (step 0 = before training).
    """
    if len(history) < 2:
        return Check(False, "The run has not taken a step yet.")
    first, last = history[0], history[-1]
    gain = last.margin - first.margin
    return Check(gain >= DPO_MARGIN_GAIN and last.kl < DPO_MAX_KL,
                 f"Margin {first.margin:+.2f} → {last.margin:+.2f} nats ({gain:+.2f}) in {last.step} steps; KL "
                 f"from the reference {last.kl:.4f} nats.")


# ------------------------------------------------------------------------------------------------ summarization
def summary_beats_lead(text: str, summary: str, reference: str, comparison=None) -> Check:
    """On one of the page's examples, with its own reference unchanged, the model's summary has a higher ROUGE-L F1
    than the lead-N baseline (the text's first sentences, as many as best match the summary's length).

    The reference must be the example's own: otherwise editing the reference towards the summary would win.

    Args:
        text: The text summarized.
        summary: The model's finished summary.
        reference: The reference summary.
        comparison: The page's cached :func:`engine.summarize.compare_with_lead`; computed when None.
    """
    from engine import summarize as sm

    comp = comparison if comparison is not None else sm.compare_with_lead(text, summary, reference)
    model, lead = comp.model["rougeL"].f1, comp.lead["rougeL"].f1
    said = (f"ROUGE-L F1: model {model:.3f}, lead baseline {lead:.3f} (the first {comp.baseline.sentences} "
            f"sentence{'s' if comp.baseline.sentences != 1 else ''}).")
    example = any(ex.text.strip() == text.strip() and ex.reference.strip() == reference.strip()
                  for ex in sm.examples())
    if not example:
        return Check(False, f"{said} This is not one of the examples with its own reference: pick an example and "
                            "leave its reference as it is.")
    return Check(model > lead, said)


# ------------------------------------------------------------------------------------------------ diffusion
#: :func:`label_ignored`: the share of generated digits recognised stays below this.
IGNORED_RATE = 0.5
#: :func:`weak_guidance_digit`: guidance at most this, and this share of the digit's samples recognised.
WEAK_GUIDANCE = 0.5
WEAK_GUIDANCE_SHARE = 0.9


def label_ignored(reading, guidance: float) -> Check:
    """Fewer than :data:`IGNORED_RATE` of the generated digits are recognised as the digit asked for.

    Args:
        reading: :class:`engine.diffusion.Recognition` of the page's generated digits (every class).
        guidance: The guidance strength w they were drawn with.
    """
    n = len(reading.wanted)
    return Check(reading.rate < IGNORED_RATE, f"At w = {guidance:g}: {reading.rate:.0%} of the {n} generated digits "
                 f"are read as the digit asked for (chance: {reading.chance:.0%}).")


def weak_guidance_digit(reading, digit: int, guidance: float) -> Check:
    """Guidance at most :data:`WEAK_GUIDANCE`, and at least :data:`WEAK_GUIDANCE_SHARE` of the samples generated for
    ``digit`` are recognised as ``digit``.

    Args:
        reading: :class:`engine.diffusion.Recognition` of the page's generated digits (every class).
        digit: The digit picked on the page.
        guidance: The guidance strength w.
    """
    hit, n = reading.per_class().get(int(digit), (0, 0))
    said = f"At w = {guidance:g}: {hit} of the {n} generated {int(digit)}s are read as {int(digit)}."
    if guidance > WEAK_GUIDANCE:
        return Check(False, f"{said} Guidance is above {WEAK_GUIDANCE:g}: turn it down.")
    return Check(n > 0 and hit >= WEAK_GUIDANCE_SHARE * n - 1e-9, said)


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
    "ml_to_llm": (
        Challenge("ml_to_llm_overfit", "ml_to_llm",
                  f"In **Regression**, make the polynomial **overfit**: its error on new points at least "
                  f"**{OVERFIT_RATIO:g}×** its error on the training points (with some noise in the data).",
                  f"Noise ≥ {OVERFIT_MIN_NOISE:g} and MSE on the 200 new points ≥ {OVERFIT_RATIO:g} × MSE on the 30 "
                  "training points, as the page's two metrics show."),
    ),
    "genai_landscape": (
        Challenge("genai_landscape_quiz", "genai_landscape",
                  "Answer every question of **Check yourself** right.",
                  "Every question answered and every answer the right one (your answers stay in this tab, so a "
                  "shared link does not carry them)."),
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
    "attention": (
        Challenge("attention_previous_head", "attention",
                  "In **2. One head**, find a **previous-token head**: each token puts **more than half** of its "
                  "attention on the token just before it. (Hint: colour the grid in section 3 by *Weight on the "
                  "previous token*.)",
                  f"For the layer and head picked in section 2, on a prompt of at least {PREV_HEAD_MIN_TOKENS} "
                  f"tokens: the weight each position from 2 on gives the token just before it, averaged, is > "
                  f"{PREV_HEAD_SHARE:.0%}. Position 1 is left out: the token before it is the first token, the "
                  "attention sink."),
        Challenge("attention_focused_head", "attention",
                  "Find a head where the **last token reads one word**: more than half of its attention on one "
                  "earlier token that is **not the first token** (the attention sink) and not itself.",
                  f"For the layer and head picked in section 2: the last row's largest weight on positions 1 to "
                  f"T − 2 is > {FOCUS_SHARE:.0%}."),
    ),
    "encoders": (
        Challenge("encoders_meaning_search", "encoders",
                  "In **3. Sentence embeddings**, set a trap for keyword search: add a sentence that shares a word "
                  "with your query but means something else, and make the **best match** a sentence that shares "
                  "**no word** with the query.",
                  "The top hit shares no word with the query, and another sentence does. Words of "
                  f"{WORD_MIN_LETTERS}+ letters, case and endings (-s, -ed, -ing) ignored, and a word of "
                  f"{PREFIX_MIN_LETTERS}+ letters matches the words it starts (guitar, guitarist); very common words "
                  "(the, and, with…) do not count."),
        Challenge("encoders_wordpiece_longer", "encoders",
                  "In **2. Tokenization**, find a **single word** that WordPiece cuts into **more pieces** than the "
                  "decoder's byte-level BPE.",
                  "The box holds one word of letters only, and its WordPiece pieces ([CLS] and [SEP] not counted) "
                  "outnumber its BPE tokens."),
    ),
    "fine_tuning": (
        Challenge("fine_tuning_overfit", "fine_tuning",
                  f"**Overfit on purpose**: fine-tune until the **validation loss** ends at least "
                  f"**{OVERFIT_RISE:.0%} above its lowest point**: the model memorises its rows instead of learning "
                  "what they share. (Hint: more steps, a larger learning rate.)",
                  f"Your last finished fine-tune in this session: its last validation loss ≥ "
                  f"{1 + OVERFIT_RISE:.2f} × its lowest (the loss before training counts)."),
    ),
    "rlhf": (
        Challenge("rlhf_dpo_gentle", "rlhf",
                  f"Tune **DPO** so it raises the chosen-minus-rejected **margin by at least {DPO_MARGIN_GAIN:g} "
                  f"nats** while the **KL from the reference stays below {DPO_MAX_KL:g}**.",
                  f"Your last DPO run in this session: margin after the last step − margin before training ≥ "
                  f"{DPO_MARGIN_GAIN:g} nats (on its training pairs), and the last KL < {DPO_MAX_KL:g} nats."),
    ),
    "summarization": (
        Challenge("summarization_beats_lead", "summarization",
                  "Pick one of the **examples**, leave its reference as it is, and change the **length** settings "
                  "until the model's summary **beats the lead baseline** on ROUGE-L F1.",
                  "The text and reference are one example's own, unchanged, and the model's ROUGE-L F1 is higher "
                  "than the lead-N baseline's (a tie does not count). Only a summary the page has written is "
                  "scored."),
    ),
    "diffusion": (
        Challenge("diffusion_label_ignored", "diffusion",
                  "Set the guidance **w** so that the classifier in **5.** recognises **fewer than half** of the "
                  "generated digits. What is the model drawing then?",
                  f"Of the 100 digits generated in section 5, fewer than {IGNORED_RATE:.0%} are read as the digit "
                  "asked for (chance is 10 %)."),
        Challenge("diffusion_weak_guidance", "diffusion",
                  f"With weak guidance (**w ≤ {WEAK_GUIDANCE:g}**), find a digit (and seed) whose generated samples "
                  f"are still read right **{WEAK_GUIDANCE_SHARE * 10:.0f} times out of 10**.",
                  f"w ≤ {WEAK_GUIDANCE:g}, and section 5's classifier reads at least {WEAK_GUIDANCE_SHARE:.0%} of the "
                  "samples generated for the digit picked in section 4 as that digit."),
    ),
}
