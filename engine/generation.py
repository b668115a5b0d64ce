"""Sampling many continuations of one prompt at once (one batch, one KV cache), reproducibly from a seed.

The prompt is run once with batch size 1; its key/value cache is then copied ``n`` times, so a teacher's "sample 32
continuations" costs one prompt pass plus one batched step per new token, not 32 separate generations.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine import sampling
from engine.lm import MAX_NEW_TOKENS, LanguageModel

#: Upper bound on ``n × (prompt + new tokens)``: the batched KV cache costs ~46 KB per token slot on SmolLM2-135M,
#: so this keeps one request under ~400 MB (Streamlit Community Cloud has 2.7 GB for everything).
MAX_BATCH_TOKEN_SLOTS = 8192
#: Most continuations one request may ask for.
MAX_SAMPLES = 64


@dataclass(frozen=True)
class BatchSample:
    """``n`` continuations of one prompt.

    Attributes:
        prompt_ids: The prompt's token ids.
        token_ids: One list of generated ids per continuation (ends at EOS when ``stop_at_eos``).
        texts: Decoded continuations (special tokens dropped).
        first_probs: ``[V]`` the distribution the first tokens were drawn from (after temperature/top-k/top-p).
        seconds: Wall time of the whole batch.
        forwards: Model calls made (1 for the prompt, then 1 per batched step).
    """

    prompt_ids: list[int]
    token_ids: list[list[int]]
    texts: list[str]
    first_probs: torch.Tensor
    seconds: float
    forwards: int

    @property
    def first_tokens(self) -> list[int]:
        """The first generated token of each continuation."""
        return [ids[0] for ids in self.token_ids if ids]

    @property
    def tokens_generated(self) -> int:
        return sum(len(ids) for ids in self.token_ids)


def greedy_text(lm: LanguageModel, ids: Sequence[int], max_new_tokens: int = 8) -> str:
    """The greedy continuation of ``ids`` as text, stopped at end of sequence (deterministic, so cacheable)."""
    return "".join(step.text for step in lm.generate_stream(list(ids), max_new_tokens, temperature=0.0))


@dataclass(frozen=True)
class Reply:
    """A greedy reply written mostly by the fast 4-bit decoder.

    Attributes:
        text: The reply (special tokens dropped).
        token_ids: Its tokens (the last one is the end-of-reply token when the model stopped by itself).
        fast: Whether the 4-bit decoder wrote the tokens after the first (False: the float32 model wrote them all,
            e.g. while the 4-bit copy was still being packed).
    """

    text: str
    token_ids: tuple[int, ...]
    fast: bool


def greedy_reply(lm: LanguageModel, ids: Sequence[int], max_new_tokens: int, first_logits: torch.Tensor) -> Reply:
    """A greedy reply for a page that also shows the next-token distribution after ``ids``.

    Why: a float32 greedy reply costs one full read of the weights per token (~36 ms here); the 4-bit decoder is
    about three times faster. Its numbers are close to float32's, not equal, so its first pick could disagree with
    the distribution drawn next to the reply. The first token is therefore taken from ``first_logits`` (the page's
    own float32 logits, usually already cached), and only the rest comes from the 4-bit decoder.

    Args:
        lm: The shared model (not modified).
        ids: Prompt token ids (non-empty).
        max_new_tokens: Upper bound on the reply's tokens.
        first_logits: ``[V]`` float32 logits after ``ids``.
    """
    steps = list(lm.generate_stream(list(ids), max_new_tokens, temperature=0.0, fast=True, first_logits=first_logits))
    return Reply(
        "".join(s.text for s in steps),
        tuple(s.token_id for s in steps),
        len(steps) > 1 and all(s.fast for s in steps[1:]),
    )


def max_samples_for(prompt_tokens: int, new_tokens: int) -> int:
    """Largest ``n`` allowed for a prompt of ``prompt_tokens`` and ``new_tokens`` new tokens (at least 1)."""
    return max(1, min(MAX_SAMPLES, MAX_BATCH_TOKEN_SLOTS // max(1, prompt_tokens + new_tokens)))


@torch.inference_mode()
def sample_continuations(
    lm: LanguageModel,
    ids: Sequence[int],
    n: int,
    max_new_tokens: int = 12,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    stop_at_eos: bool = True,
) -> BatchSample:
    """Sample ``n`` continuations of ``ids`` in one batch.

    The same ``seed`` and settings give the same continuations: one ``torch.Generator`` draws every token, row by
    row, step by step, in a fixed order.

    Args:
        lm: The shared model (not modified).
        ids: Prompt token ids (non-empty).
        n: Number of continuations, clipped to :func:`max_samples_for`.
        max_new_tokens: Tokens per continuation, clipped to :data:`engine.lm.MAX_NEW_TOKENS` and the context window.
        temperature: 0 for greedy (then all ``n`` rows are identical).
        top_k: Keep the ``k`` most likely tokens (0 = off).
        top_p: Nucleus cut-off (1 = off).
        seed: Seed of the random generator.
        stop_at_eos: A row stops after it produces the end-of-sequence token.

    Raises:
        ValueError: On an empty prompt or one that leaves no room in the context window.
    """
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError("Nothing to continue: the prompt has no tokens.")
    new = max(0, min(int(max_new_tokens), MAX_NEW_TOKENS, lm.info.context_length - len(ids)))
    if new == 0:
        raise ValueError("The prompt fills the context window: there is no room for new tokens.")
    n = max(1, min(int(n), max_samples_for(len(ids), new)))
    gen = torch.Generator().manual_seed(int(seed))
    eos = lm.info.eos_token_id
    start = time.perf_counter()
    forwards = 0

    # The model lock is LanguageModel's own (on 2 cores two forwards at once only slow each other down). It is taken
    # per forward, not for the whole batch, so other sessions' requests interleave with a long batch.
    lock = lm.exclusive()
    with lock:
        out = lm.model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)  # prompt once: [1, 1, V]
    forwards += 1
    cache = out.cache
    cache.batch_repeat_interleave(n)  # every layer's K/V: [1, kv, T, hd] -> [n, kv, T, hd]
    logits = out.logits[0, -1].float().expand(n, -1)  # [n, V], identical rows

    produced: list[list[int]] = [[] for _ in range(n)]
    active = list(range(n))  # rows still generating; the cache holds exactly these rows, in this order
    first_probs = None
    for step in range(new):
        # One distribution per active row (temperature, top-k, top-p), then one draw per row.
        probs = sampling.filtered_distribution_batch(logits, temperature, top_k, top_p)  # [B, V]
        if first_probs is None:
            first_probs = probs[0].clone()  # [V]
        chosen = sampling.choose(probs, temperature, gen).tolist()  # [len(active)]
        still = []
        for pos, (row, tok) in enumerate(zip(active, chosen)):
            produced[row].append(int(tok))
            if not (stop_at_eos and tok == eos):
                still.append(pos)
        if step == new - 1 or not still:
            break
        if len(still) < len(active):  # drop finished rows from the batch and the cache
            cache.batch_select_indices(torch.tensor(still))
            active = [active[pos] for pos in still]
            chosen = [chosen[pos] for pos in still]
        with lock:
            out = lm.model(input_ids=torch.tensor(chosen).unsqueeze(1), cache=cache, use_cache=True)  # [B, 1, V]
        forwards += 1
        cache = out.cache
        logits = out.logits[:, -1].float()  # [B, V]
    lm.stats.add(forwards=forwards, tokens=sum(len(p) for p in produced))
    texts = [lm.decode(p, skip_special_tokens=True) for p in produced]
    return BatchSample(ids, produced, texts, first_probs, time.perf_counter() - start, forwards)


@dataclass(frozen=True)
class FirstTokenHistogram:
    """How often each first token was drawn in a batch, next to the probability it was drawn with.

    Attributes:
        token_ids: The tokens shown, most likely first.
        empirical: Share of the samples that started with each.
        expected: Its probability after temperature, top-k and top-p.
        total: Samples counted.
        total_variation: Half the summed gap between shares and probabilities (over drawn and shown tokens).
    """

    token_ids: list[int]
    empirical: list[float]
    expected: list[float]
    total: int
    total_variation: float


def first_token_histogram(result: BatchSample, top: int = 12, most: int = 20) -> FirstTokenHistogram:
    """The ``top`` most likely first tokens plus every token drawn, at most ``most`` of them, most likely first."""
    counts = Counter(result.first_tokens)
    total = sum(counts.values())
    theory = result.first_probs  # [V]
    cats = [int(i) for i in torch.topk(theory, min(top, theory.shape[-1])).indices if float(theory[int(i)]) > 0]
    cats += [t for t, _ in counts.most_common() if t not in cats]
    cats = sorted(cats, key=lambda t: -float(theory[t]))[:most]
    tv = 0.5 * sum(abs(counts.get(t, 0) / total - float(theory[t])) for t in set(counts) | set(cats))
    return FirstTokenHistogram(
        cats, [counts.get(t, 0) / total for t in cats], [float(theory[t]) for t in cats], total, tv
    )


# ------------------------------------------------------------------------------------------------ streaming tally
@dataclass
class StreamTally:
    """What a streamed generation has produced so far, and how fast (fed one :class:`engine.lm.GenStep` at a time).

    Attributes:
        text: The continuation so far (pieces joined; special tokens contribute nothing).
        tokens: Tokens generated.
        seconds: Time from the request to the latest token (prompt pass included).
        first_token_s: Time from the request to the first token (the prompt pass plus one pick), or None.
        last_token_id: Id of the latest token (the end-of-reply token when the model stopped by itself).
        fast: Whether the tokens came from the 4-bit decoder (False: the float32 model).
    """

    text: str = ""
    tokens: int = 0
    seconds: float = 0.0
    first_token_s: float | None = None
    last_token_id: int | None = None
    fast: bool = False

    def add(self, step) -> StreamTally:
        """Take one ``GenStep`` (``text``, ``token_id``, ``elapsed_s``) and return self."""
        self.text += step.text
        self.tokens += 1
        self.seconds = float(step.elapsed_s)
        if self.first_token_s is None:
            self.first_token_s = self.seconds
        self.last_token_id = int(step.token_id)
        self.fast = bool(getattr(step, "fast", False))
        return self

    @property
    def tokens_per_s(self) -> float:
        """Tokens per second over the whole request (0 before the first token)."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def stopped_by_model(self, eos_token_id: int) -> bool:
        """Whether generation ended because the model chose its end-of-reply token."""
        return self.last_token_id == int(eos_token_id)
