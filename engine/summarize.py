"""Summarization with the chat model, measured honestly: the prompt, a store of finished summaries, ROUGE (via the
``rouge-score`` library), a lead-N extractive baseline, and examples of what ROUGE and BLEU miss.

The model summarizes through its chat template with the one generation loop (:meth:`LanguageModel.generate_stream`,
greedy). Nothing here draws anything; :mod:`components.caches` wraps these functions for the page.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.lm import GenStep, InputError, LanguageModel, check_length

#: Longest text the page summarizes, in tokens (generation reads the whole text before the first new token: on 2
#: shared cores a longer text makes everyone wait).
MAX_SUMMARY_INPUT_TOKENS = 1024
#: Longest text the page's box keeps (characters): past the token cap, so a long paste gets the token message (or the
#: context-window one) instead of being silently cut.
MAX_SUMMARY_TEXT_CHARS = 40_000
#: Bounds of the token cap the learner sets (the generation loop also stops at ``<|im_end|>``).
MIN_CAP, MAX_CAP, DEFAULT_CAP = 16, 160, 64
#: Bounds of the "about N words" length.
MIN_WORDS, MAX_WORDS, DEFAULT_WORDS = 10, 80, 30
#: Length styles the page offers (the instruction added after the text).
LENGTHS = ("One sentence", "About N words")
#: Longest text ROUGE is computed on (characters), so a pasted book cannot stall the page.
MAX_ROUGE_CHARS = 6000

DATA_DIR = Path(__file__).resolve().parent / "data" / "summaries"


# ---------------------------------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Example:
    """A built-in text to summarize, with the reference summary we wrote for it.

    Attributes:
        key: File stem, e.g. ``"news_library"``.
        title: Name shown in the picker.
        source: Where the text comes from (credit).
        text: The text to summarize.
        reference: Our reference summary (the learner can edit it on the page).
    """

    key: str
    title: str
    source: str
    text: str
    reference: str


@lru_cache(maxsize=1)
def examples() -> tuple[Example, ...]:
    """The shipped examples (``engine/data/summaries/*.json``), sorted by file name."""
    out = []
    for path in sorted(DATA_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out.append(Example(path.stem, data["title"], data["source"], data["text"], data["reference"]))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------- the prompt
def instruction(length: str, words: int = DEFAULT_WORDS) -> str:
    """The request added after the text for a length style (``"One sentence"`` or ``"About N words"``).

    Raises:
        ValueError: For an unknown style.
    """
    if length == "One sentence":
        return "Summarize the text above in one sentence."
    if length == "About N words":
        n = max(MIN_WORDS, min(MAX_WORDS, int(words)))
        return f"Summarize the text above in about {n} words."
    raise ValueError(f"Unknown length {length!r}: choose one of {', '.join(LENGTHS)}.")


def summary_messages(text: str, length: str, words: int = DEFAULT_WORDS) -> list[dict[str, str]]:
    """The chat messages sent to the model: one user turn, the text first and the request after it.

    (With this 135M model the request placed after the text was followed more often than before it.)
    """
    return [{"role": "user", "content": f"{text.strip()}\n\n{instruction(length, words)}"}]


@dataclass(frozen=True)
class SummaryPrompt:
    """What the model reads.

    Attributes:
        templated: The exact string the chat template made (system turn, markers and all).
        ids: Its token ids.
        text_tokens: Tokens of the learner's text alone.
        instruction: The request added after the text.
    """

    templated: str
    ids: tuple[int, ...]
    text_tokens: int
    instruction: str


def build_prompt(lm: LanguageModel, text: str, length: str, words: int = DEFAULT_WORDS, max_new_tokens: int = DEFAULT_CAP,
                 cap: int = MAX_SUMMARY_INPUT_TOKENS) -> SummaryPrompt:
    """Check the text and build the templated prompt.

    Args:
        lm: The shared model.
        text: The learner's text.
        length: One of :data:`LENGTHS`.
        words: Target words for ``"About N words"``.
        max_new_tokens: Tokens the summary may use (the prompt and the summary must fit the context window).
        cap: Most tokens of text the page accepts.

    Raises:
        InputError: Empty text, text past the context window or past ``cap``.
    """
    if not text.strip():
        raise InputError("The text to summarize is empty.")
    text_ids = lm.encode(text.strip())
    window = lm.info.context_length
    if len(text_ids) + max_new_tokens > window:
        raise InputError(
            f"The text is {len(text_ids):,} tokens long: with a {max_new_tokens}-token summary that is past the "
            f"model's whole context window of {window:,} tokens, so it could not even read it all. This page reads "
            f"at most {cap:,} tokens: shorten the text."
        )
    check_length(text_ids, cap, "text", why=" (the model reads all of it before writing the first word)")
    request = instruction(length, words)
    templated = lm.chat_prompt(summary_messages(text, length, words))
    ids = lm.encode(templated)
    # The template adds a system turn and markers: check the whole prompt plus the summary fits too.
    check_length(ids, window - max_new_tokens, "prompt", why=" with its summary (the context window)")
    return SummaryPrompt(templated, tuple(ids), len(text_ids), request)


# ---------------------------------------------------------------------------------------------------- generation
@dataclass(frozen=True)
class Summary:
    """A finished summary.

    Attributes:
        text: The generated summary (stripped).
        token_ids: The generated ids (``<|im_end|>`` included when the model stopped itself).
        stopped_at_cap: True when the token cap cut it (it may end mid-sentence).
        seconds: Generation time of the run that made it (the first one; later readers get it from the store).
        fast: Whether the 4-bit generation path made it.
    """

    text: str
    token_ids: tuple[int, ...]
    stopped_at_cap: bool
    seconds: float
    fast: bool

    @property
    def n_tokens(self) -> int:
        """Generated tokens, the end marker included."""
        return len(self.token_ids)

    @property
    def words(self) -> int:
        """Words (whitespace-separated) in the summary."""
        return len(self.text.split())


def clamp_cap(max_new_tokens: int) -> int:
    """The token cap kept within :data:`MIN_CAP`..:data:`MAX_CAP`."""
    return max(MIN_CAP, min(MAX_CAP, int(max_new_tokens)))


def summary_steps(lm: LanguageModel, prompt: SummaryPrompt, max_new_tokens: int, fast: bool) -> Iterator[GenStep]:
    """The model's greedy summary, token by token (the app's one generation loop, capped by :func:`clamp_cap`)."""
    return lm.generate_stream(list(prompt.ids), clamp_cap(max_new_tokens), temperature=0.0, seed=0, fast=fast)


def finish(steps: Sequence[GenStep], max_new_tokens: int, eos_id: int, fast: bool, seconds: float) -> Summary:
    """Turn the generated steps into a :class:`Summary`.

    ``fast`` is the path that was asked for; the summary records the path that ran (each step says whether the 4-bit
    decoder made it: before that copy is ready, a "fast" request runs in float32), so the page's label stays true.
    """
    ids = tuple(s.token_id for s in steps)
    text = "".join(s.text for s in steps).strip()
    ran_fast = all(s.fast for s in steps) if steps else fast
    return Summary(text, ids, bool(ids) and ids[-1] != eos_id and len(ids) >= max_new_tokens, seconds, ran_fast)


class SummaryStore:
    """Finished summaries shared by every session, by ``(model key, text, settings)``, with one generation per key.

    A second reader of a key that is being generated waits for the first (up to ``wait_s``) and then reads the stored
    summary instead of generating it again. Least recently used entries are dropped past ``capacity``.
    """

    def __init__(self, capacity: int = 256, wait_s: float = 300.0) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self._items: OrderedDict[tuple, Summary] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Summary | None:
        """The stored summary for ``key``, or None."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple, summary: Summary) -> None:
        """Store a finished summary."""
        with self._lock:
            self._items[key] = summary
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def _key_lock(self, key: tuple) -> threading.Lock:
        with self._lock:
            if len(self._locks) > 4 * self.capacity:  # forget idle locks
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(key, threading.Lock())

    def stream(self, key: tuple, make_steps: Callable[[], Iterable[GenStep]], max_new_tokens: int, eos_id: int,
               fast: bool) -> Iterator[str]:
        """Yield the summary's text piece by piece: the stored one at once, else each new token as it is generated
        (then stored; a stream stopped half-way stores nothing)."""
        hit = self.get(key)
        if hit is not None:
            yield hit.text
            return
        lock = self._key_lock(key)
        got = lock.acquire(timeout=self.wait_s)
        try:
            hit = self.get(key)  # another session may have finished it while we waited
            if hit is not None:
                yield hit.text
                return
            steps: list[GenStep] = []
            start = time.perf_counter()
            for step in make_steps():
                steps.append(step)
                if step.text:
                    yield step.text
            self.put(key, finish(steps, max_new_tokens, eos_id, fast, time.perf_counter() - start))
        finally:
            if got:
                lock.release()


# ---------------------------------------------------------------------------------------------------- baseline
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences: after ``.``, ``!`` or ``?`` (and closing quotes) followed by a capital or a digit,
    and at blank lines. A plain rule: "Dr. Smith" is cut after "Dr.", as any rule this simple would do."""
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        out.extend(s.strip() for s in _SENTENCE_END.split(" ".join(para.split())) if s.strip())
    return out


@dataclass(frozen=True)
class LeadBaseline:
    """The first sentences of the text, as many as best match a target length.

    Attributes:
        text: The chosen sentences, joined.
        sentences: How many leading sentences were taken.
        words: Words in ``text``.
        target_words: The length it was matched to (the model summary's words).
    """

    text: str
    sentences: int
    words: int
    target_words: int


def lead_baseline(text: str, target_words: int) -> LeadBaseline:
    """Lead-N: the leading sentences whose word count is closest to ``target_words`` (at least one; ties → fewer).

    Raises:
        ValueError: If the text has no sentence.
    """
    sentences = split_sentences(text)
    if not sentences:
        raise ValueError("The text has no sentence to copy.")
    best_k, best_gap, total, counts = 1, None, 0, []
    for k, s in enumerate(sentences, start=1):
        total += len(s.split())
        counts.append(total)
        gap = abs(total - target_words)
        if best_gap is None or gap < best_gap:
            best_k, best_gap = k, gap
        if total >= target_words:
            break
    return LeadBaseline(" ".join(sentences[:best_k]), best_k, counts[best_k - 1], int(target_words))


# ---------------------------------------------------------------------------------------------------- ROUGE
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ROUGE_NAMES = {"rouge1": "ROUGE-1 (words)", "rouge2": "ROUGE-2 (word pairs)", "rougeL": "ROUGE-L (longest common "
               "subsequence)"}


@lru_cache(maxsize=1)
def _scorer():
    """rouge-score's scorer and its tokenizer (the same object, so :func:`rouge_tokens` shows what it compares)."""
    # Imported here: rouge-score imports nltk (and scipy through it), about 2 s and 100 MB the first time; only the
    # pages that score summaries pay it.
    from rouge_score import rouge_scorer, tokenizers

    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=True)
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=tokenizer), tokenizer


@dataclass(frozen=True)
class RougeScore:
    """One ROUGE variant of a candidate against a reference (each 0..1).

    Attributes:
        name: ``"rouge1"``, ``"rouge2"`` or ``"rougeL"``.
        precision: Share of the candidate's n-grams found in the reference.
        recall: Share of the reference's n-grams found in the candidate.
        f1: Their harmonic mean.
    """

    name: str
    precision: float
    recall: float
    f1: float


def rouge_tokens(text: str) -> list[str]:
    """The words ROUGE compares: rouge-score's own tokenizer (lower-cased, letters a-z and digits only, stemmed)."""
    return _scorer()[1].tokenize(text[:MAX_ROUGE_CHARS])


def rouge(candidate: str, reference: str) -> dict[str, RougeScore]:
    """ROUGE-1, ROUGE-2 and ROUGE-L of ``candidate`` against ``reference`` with the ``rouge-score`` library
    (Porter stemming on, as in most papers).

    Raises:
        ValueError: When either text has no word ROUGE can count (it keeps only a-z and 0-9).
    """
    candidate, reference = candidate[:MAX_ROUGE_CHARS], reference[:MAX_ROUGE_CHARS]
    if not rouge_tokens(reference):
        raise ValueError("The reference has no words ROUGE can count (it keeps only the letters a to z and digits).")
    if not rouge_tokens(candidate):
        raise ValueError("The summary has no words ROUGE can count (it keeps only the letters a to z and digits).")
    scores = _scorer()[0].score(reference, candidate)  # rouge-score's order: (target, prediction)
    return {n: RougeScore(n, float(s.precision), float(s.recall), float(s.fmeasure)) for n, s in scores.items()}


@dataclass(frozen=True)
class Comparison:
    """ROUGE of the model's summary and of the lead baseline against one reference.

    Attributes:
        model: ROUGE of the model's summary.
        lead: ROUGE of the lead baseline.
        baseline: The baseline itself.
        model_wins: Per ROUGE variant, whether the model's F1 is higher than the baseline's (ties count as not).
    """

    model: dict[str, RougeScore]
    lead: dict[str, RougeScore]
    baseline: LeadBaseline
    model_wins: dict[str, bool]

    @property
    def wins(self) -> int:
        """Variants (of 3) on which the model beats the baseline."""
        return sum(self.model_wins.values())


def compare_with_lead(text: str, summary: str, reference: str) -> Comparison:
    """Score the model's summary and a lead baseline of the same length against the reference.

    Raises:
        ValueError: Empty or unscorable summary or reference, or a text with no sentence.
    """
    model = rouge(summary, reference)
    baseline = lead_baseline(text, len(summary.split()))
    lead = rouge(baseline.text, reference)
    wins = {n: model[n].f1 > lead[n].f1 for n in ROUGE_TYPES}
    return Comparison(model, lead, baseline, wins)


# ---------------------------------------------------------------------------------------------------- blind spots
#: The reference for the blind-spot examples, and hand-written candidates (label, text, keeps the meaning).
MISSES_REFERENCE = "The council approved the new park after a long debate."
MISSES = (
    ("Exact copy", "The council approved the new park after a long debate.", True),
    ("Paraphrase, no shared word", "Following lengthy discussions, city officials endorsed building fresh green space.",
     True),
    ("Negated", "After a long debate, the council did not approve the new park.", False),
    ("Roles swapped", "The new park approved the council after a long debate.", False),
)


@dataclass(frozen=True)
class MissRow:
    """One blind-spot candidate with its scores against :data:`MISSES_REFERENCE` (ROUGE F1 0..1, BLEU 0..100)."""

    label: str
    text: str
    same_meaning: bool
    rouge1: float
    rouge2: float
    rougeL: float
    bleu: float


def metric_misses(reference: str = MISSES_REFERENCE,
                  candidates: Sequence[tuple[str, str, bool]] = MISSES) -> list[MissRow]:
    """ROUGE-1/2/L F1 and sentence BLEU (sacrebleu, via :mod:`engine.evaluation`) of each candidate."""
    from engine.evaluation import sentence_bleu

    rows = []
    for label, text, same in candidates:
        r = rouge(text, reference)
        bleu = sentence_bleu(text, [reference]).score
        rows.append(MissRow(label, text, same, r["rouge1"].f1, r["rouge2"].f1, r["rougeL"].f1, bleu))
    return rows
