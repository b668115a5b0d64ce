"""The context window: what a model sees, what it forgets, what a long context costs, and scoring text longer than it.

Everything here runs the real model through :class:`engine.lm.LanguageModel`; nothing is simulated except the window
size itself (the model can read 8,192 tokens; a page picks a smaller window to make forgetting visible on short text).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.lm import LanguageModel
from engine.scoring import TokenScore, token_score

#: Sequence lengths the cost measurement can use (the page lets the user pick the largest).
COST_LENGTHS = (16, 32, 64, 128, 256, 512)
#: Text repeated to make the sequences whose forward passes are timed.
COST_FILLER = "The model reads every earlier token before it predicts the next one. "
#: The long-text section scores at most this many tokens (bounded run time with a small stride).
MAX_LONG_TOKENS = 512

@dataclass(frozen=True)
class WindowView:
    """A token sequence split by a context window that keeps the most recent tokens.

    Attributes:
        ids: All token ids of the text.
        window: The window size in tokens.
        start: Index of the first token inside the window (``0`` when everything fits).
    """

    ids: tuple[int, ...]
    window: int
    start: int

    @property
    def kept(self) -> tuple[int, ...]:
        """The ids the model sees: the last ``window`` tokens."""
        return self.ids[self.start:]

    @property
    def dropped(self) -> tuple[int, ...]:
        """The ids that slid out of the window (oldest first)."""
        return self.ids[: self.start]

    @property
    def in_window(self) -> list[bool]:
        """Per-token flag: ``True`` when the token is inside the window."""
        return [i >= self.start for i in range(len(self.ids))]

    @property
    def overflow(self) -> bool:
        """Whether any token fell out of the window."""
        return self.start > 0


def apply_window(ids: Sequence[int], window: int) -> WindowView:
    """Keep the last ``window`` tokens of ``ids``, as a truncating API does with a plain text that is too long.

    A text of exactly ``window`` tokens fits entirely; one more token pushes out the oldest one.

    Args:
        ids: Token ids of the whole text.
        window: Window size in tokens (at least 1).

    Raises:
        ValueError: If ``window`` is smaller than 1.
    """
    window = int(window)
    if window < 1:
        raise ValueError("The window must hold at least one token.")
    ids = tuple(int(i) for i in ids)
    return WindowView(ids=ids, window=window, start=max(0, len(ids) - window))


def answer_probability(lm: LanguageModel, context_ids: Sequence[int], answer: str) -> float:
    """p(``answer`` | context): the product of the probabilities of the answer's tokens, one forward pass.

    Args:
        lm: The model.
        context_ids: Token ids of the context (non-empty).
        answer: The continuation to score, e.g. ``" Ada"`` (leading space matters).

    Raises:
        ValueError: If the context or the answer has no tokens.
    """
    ctx = [int(i) for i in context_ids]
    ans = lm.encode(answer)
    if not ctx:
        raise ValueError("The context has no tokens.")
    if not ans:
        raise ValueError("The answer has no tokens.")
    logits = lm.forward(ctx + ans).logits  # [T, V]; position t predicts token t+1
    logp = torch.log_softmax(logits.double(), dim=-1)
    total = 0.0
    for k, token in enumerate(ans):
        total += float(logp[len(ctx) - 1 + k, token])
    return math.exp(total)


@dataclass(frozen=True)
class WindowSweepPoint:
    """p(answer) when the model sees only the last ``window`` tokens of the context."""

    window: int
    prob: float
    fact_in_view: bool


def window_sweep(
    lm: LanguageModel, ids: Sequence[int], answer: str, windows: Sequence[int], fact_start: int | None = None
) -> list[WindowSweepPoint]:
    """p(answer) for several window sizes over the same context (one forward each).

    Args:
        lm: The model.
        ids: Context token ids.
        answer: Continuation to score.
        windows: Window sizes to try.
        fact_start: Index of the fact's first token; each point says whether the fact is still wholly in view.
    """
    out = []
    for w in windows:
        view = apply_window(ids, w)
        in_view = fact_start is None or view.start <= fact_start
        out.append(WindowSweepPoint(int(w), answer_probability(lm, view.kept, answer), in_view))
    return out


def sweep_windows(n_tokens: int, smallest: int = 4, points: int = 24) -> list[int]:
    """Window sizes from ``smallest`` up to ``n_tokens`` (included), at most ``points`` of them, evenly spread."""
    n_tokens = int(n_tokens)
    if n_tokens <= smallest:
        return list(range(1, n_tokens + 1))
    step = max(1, math.ceil((n_tokens - smallest) / max(1, points - 1)))
    sizes = list(range(smallest, n_tokens, step))
    return sizes + [n_tokens]


def find_subsequence(ids: Sequence[int], needle: Sequence[int]) -> int | None:
    """Index of the first occurrence of ``needle`` in ``ids``, or ``None``."""
    ids, needle = list(ids), list(needle)
    if not needle:
        return None
    for i in range(len(ids) - len(needle) + 1):
        if ids[i : i + len(needle)] == needle:
            return i
    return None


# ------------------------------------------------------------------------------------------------ cost of a window
@dataclass(frozen=True)
class CostPoint:
    """One measured forward pass.

    Attributes:
        n_tokens: Sequence length ``T``.
        seconds: Wall time of the forward pass on this machine (best of the repeats).
        attention_bytes: Size of the attention weights the pass produced, ``L × H × T × T`` floats.
        attention_bytes_per_layer: ``H × T × T`` floats: what one layer holds at once in eager attention.
    """

    n_tokens: int
    seconds: float
    attention_bytes: int
    attention_bytes_per_layer: int


def measure_cost(lm: LanguageModel, lengths: Sequence[int], filler_ids: Sequence[int], repeats: int = 1) -> list[CostPoint]:
    """Time a forward pass and weigh its attention matrices for each sequence length, live on this machine.

    Args:
        lm: The model.
        lengths: Sequence lengths to measure (each at most the context window).
        filler_ids: Real token ids repeated to fill each sequence (so the input is text, not one token).
        repeats: Forward passes per length; the fastest is kept (less noise from other work on the machine).
    """
    filler = [int(i) for i in filler_ids] or [lm.info.eos_token_id or 0]
    out = []
    for n in lengths:
        n = int(n)
        ids = (filler * (n // len(filler) + 1))[:n]
        best = math.inf
        att_bytes = 0
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            res = lm.forward(ids, attentions=True)
            best = min(best, time.perf_counter() - t0)
            att = res.attentions  # [L, H, T, T]
            att_bytes = att.numel() * att.element_size()
            layers = att.shape[0]
            del res, att
        out.append(CostPoint(n, best, att_bytes, att_bytes // layers))
    return out


def attention_bytes(n_tokens: int, layers: int, heads: int, bytes_per_value: int = 4) -> int:
    """``layers × heads × T²`` attention weights: the quadratic term of attention memory, from the config."""
    return int(layers) * int(heads) * int(n_tokens) ** 2 * int(bytes_per_value)


# ------------------------------------------------------------------------------------------ text beyond a window
@dataclass(frozen=True)
class SlidingScore:
    """Per-token scores from a sliding window, with how much context each token had.

    Attributes:
        tokens: One score per scored token (every token after the first), in text order.
        context: For each scored token, how many tokens the model saw before it.
        forwards: Number of forward passes used.
        window: Window size.
        stride: Step between windows.
    """

    tokens: list[TokenScore]
    context: list[int]
    forwards: int
    window: int
    stride: int

    @property
    def mean_loss(self) -> float:
        """Average −log p per scored token, in nats."""
        return -sum(t.logprob for t in self.tokens) / len(self.tokens) if self.tokens else float("nan")

    @property
    def perplexity(self) -> float:
        """exp(mean loss)."""
        return math.exp(self.mean_loss) if self.tokens else float("nan")


#: Most windows run in one batched forward pass (bounds the activations: [8, 128, 576] floats per layer).
WINDOW_BATCH = 8


@torch.inference_mode()
def _new_token_logits(lm: LanguageModel, ids: list[int], passes: Sequence[tuple[int, int, int]]) -> list[torch.Tensor]:
    """Equal-length passes ``(begin, end, first_new)`` in one batch: per pass, ``[end − first_new, V]`` float32 logits
    predicting tokens ``first_new..end−1`` (the output layer runs only where a new token is predicted)."""
    x = torch.tensor([ids[b:e] for b, e, _ in passes])  # [B, W]
    with lm.exclusive():
        final = lm.model.base_model(input_ids=x, use_cache=False).last_hidden_state  # [B, W, D], final-normed
        head = lm.model.get_output_embeddings()
        out = [head(final[row, first_new - 1 - b : e - 1 - b]).float() for row, (b, e, first_new) in enumerate(passes)]
    lm.stats.add(forwards=len(passes))
    return out


def sliding_window_scores(lm: LanguageModel, ids: Sequence[int], window: int, stride: int) -> SlidingScore:
    """Score a text longer than ``window`` by sliding a window over it (the Hugging Face perplexity recipe).

    Windows end at ``stride``, ``2·stride``, … tokens; each pass scores only the tokens not scored before, so every
    token is scored once, with up to ``window − 1`` tokens of context. ``stride == window`` cuts the text into chunks
    (cheap, but a token at a chunk start sees only the one token before it); a small stride gives every token a long
    context at the price of more passes. Tokens 1..T−1 are scored whatever the settings, so perplexities compare.

    Args:
        lm: The model.
        ids: Token ids of the text (at least 2).
        window: Tokens per forward pass (at least 2).
        stride: Tokens advanced between passes (1..window).

    Raises:
        ValueError: On a text of fewer than 2 tokens or an invalid window/stride.
    """
    ids = [int(i) for i in ids]
    window, stride = int(window), int(stride)
    if len(ids) < 2:
        raise ValueError("Need at least two tokens to score.")
    if window < 2 or not 1 <= stride <= window:
        raise ValueError("The window must be at least 2 tokens and the stride between 1 and the window.")
    # The passes: (begin, end, first new position). Each scores tokens first_new..end-1, never one twice.
    passes: list[tuple[int, int, int]] = []
    scored_until = 1  # token 0 has no context and is never scored (as in engine.scoring.score_ids)
    end = 0
    while scored_until < len(ids):
        end = min(len(ids), end + stride) if end else min(len(ids), window)
        # Start early enough that the first new token has at least one token before it in the pass: with
        # stride == window (plain chunking) a pass is window + 1 tokens and a chunk's first token is predicted from the
        # last token of the previous chunk, so every method scores exactly the same tokens.
        begin = max(0, min(end - window, scored_until - 1))
        passes.append((begin, end, scored_until))
        scored_until = end
    found: dict[int, tuple[TokenScore, int]] = {}  # position → (score, tokens of context)
    # Passes of one length run as one batch (still one pass each, counted as such): a [B, W] forward reads the
    # weights once for B windows, about twice as fast here as B separate [1, W] forwards, with the same numbers.
    by_length: dict[int, list[tuple[int, int, int]]] = {}
    for p in passes:
        by_length.setdefault(p[1] - p[0], []).append(p)
    for group in by_length.values():
        for i in range(0, len(group), WINDOW_BATCH):
            batch = group[i : i + WINDOW_BATCH]
            for (begin, _, first_new), logits in zip(batch, _new_token_logits(lm, ids, batch)):
                for k, row in enumerate(logits):  # row k predicts position first_new + k
                    pos = first_new + k
                    found[pos] = (token_score(lm, pos, ids[pos], row), pos - begin)
    tokens = [found[p][0] for p in range(1, len(ids))]
    context = [found[p][1] for p in range(1, len(ids))]
    forwards = len(passes)
    return SlidingScore(tokens, context, forwards, window, stride)


def long_text_runs(lm: LanguageModel, ids: Sequence[int], window: int, stride: int) -> dict[str, SlidingScore]:
    """The same tokens scored three ways: chunks of ``window``, a window sliding by ``stride``, the whole text in view.

    Raises:
        ValueError: When ``stride`` is larger than ``window`` (tokens would be skipped).
    """
    if stride > window:
        raise ValueError(f"The stride cannot be larger than the window ({window}): tokens would be skipped.")
    return {
        f"chunks of {window}": sliding_window_scores(lm, ids, window, window),
        f"sliding, stride {stride}": sliding_window_scores(lm, ids, window, stride),
        f"whole text in view ({len(ids)} tokens)": sliding_window_scores(lm, ids, len(ids), len(ids)),
    }
