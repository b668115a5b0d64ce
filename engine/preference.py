"""Learning from human preferences, live: a shared vote store, a Bradley–Terry reward model, DPO and best-of-n.

The three parts of RLHF as the app runs them on the shared model (never modified):

- **Preference data**: pairs ``(prompt, chosen, rejected)``. Built-in pairs (written by hand for the app, see
  ``engine/data/preferences/``) and the votes of everyone on the server (:class:`PreferenceStore`: in memory, shared,
  bounded, thread-safe, no names).
- **A reward model** (Bradley–Terry): ``p(A preferred over B) = σ(r(A) − r(B))`` with ``r(x) = w · f(x) + b``, a linear
  head on *frozen* features ``f``: the sentence encoder's vector of the answer (all-MiniLM-L6-v2, mean-pooled, 384
  numbers) plus its cosine with the prompt's vector (is it on topic?). The encoder reads a text about 20 times faster
  than the decoder (6 layers of width 384 vs 30 of width 576, and no chat template around the text), so features for a
  few dozen pairs take well under the 5 s budget; the decoder's own log-likelihood of each answer is shown beside the
  reward, computed separately.
- **DPO** (Rafailov et al. 2023, eq. 7): ``L = −log σ(β[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) −
  log π_ref(y_l|x))])``, trained on a per-session LoRA adapter (:mod:`engine.training`). The reference model is the
  shared model itself (the adapter at zero).

Speed: the adapter only touches the last few decoder layers, so everything below the first adapted layer is frozen.
:func:`prepare_pairs` runs the full model once per sequence and keeps the hidden states entering the first adapted
layer; each training step then runs only the adapted layers (:func:`tail_hidden`) and the output layer on the answers'
positions. A test checks this equals the full adapted model (:func:`engine.training._logits_with`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from engine.generation import sample_continuations
from engine.lm import InputError, LanguageModel, check_length
from engine.training import LoraAdapter, QueuedRun

DATA_DIR = Path(__file__).resolve().parent / "data" / "preferences"
BUILTIN_FILE = DATA_DIR / "kind_vs_dismissive.json"

#: Caps that keep one request bounded (tokens per prompt / per answer, pairs per training run).
MAX_PROMPT_TOKENS = 64
MAX_ANSWER_TOKENS = 64
MAX_PAIRS = 32
MAX_DPO_STEPS = 60
#: The shared vote store keeps at most this many votes (oldest dropped first).
MAX_VOTES = 500
#: Decoder layers (the last ones) whose MLP output weights DPO's LoRA adapter changes: two keep a step short.
DPO_LAYERS = 2
#: Sequences per batched frozen forward (bounds the memory of one pass).
CHUNK = 8
CHOICES = ("A", "B", "tie")
FLATTERY = "What a great question! You are clearly very smart. "
PADDING = " I hope this helps. Let me know if you have any other questions. Have a wonderful day!"


# ------------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class PreferencePair:
    """One row of preference data: the same prompt, the answer a rater preferred and the one they did not."""

    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class BuiltinSet:
    """The built-in preference set (hand-written for the app, see its ``about``)."""

    name: str
    about: str
    rating_prompts: tuple[str, ...]
    train: tuple[PreferencePair, ...]
    held_out: tuple[PreferencePair, ...]
    held_out_prompts: tuple[str, ...]


@lru_cache(maxsize=1)
def builtin_set(path: str = str(BUILTIN_FILE)) -> BuiltinSet:
    """Load the built-in preference pairs (a small JSON file shipped with the app)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))

    def pairs(rows):
        return tuple(PreferencePair(str(p), str(c), str(r)) for p, c, r in rows)

    return BuiltinSet(raw["name"], raw["about"], tuple(raw["rating_prompts"]), pairs(raw["train"]),
                      pairs(raw["held_out"]), tuple(raw["held_out_prompts"]))


@dataclass(frozen=True)
class Vote:
    """One rater's verdict on two answers to a prompt (no name, no session id)."""

    prompt: str
    a: str
    b: str
    choice: str  # "A", "B" or "tie"

    def pair(self) -> PreferencePair | None:
        """As a preference pair, or None for a tie (DPO and the accuracy need a winner)."""
        if self.choice == "A":
            return PreferencePair(self.prompt, self.a, self.b)
        if self.choice == "B":
            return PreferencePair(self.prompt, self.b, self.a)
        return None


def vote_key(session_nonce: str, prompt: str, a: str, b: str) -> str:
    """A one-way key for "this session voted on this pair": repeats (reruns, double clicks) map to the same key."""
    return hashlib.sha256("\x1f".join((session_nonce, prompt, a, b)).encode()).hexdigest()


class PreferenceStore:
    """The server's shared preference set: thread-safe, bounded, in memory only (a restart or :meth:`reset` clears it).

    A vote is counted once per key (:func:`vote_key`), however often it is submitted.
    """

    def __init__(self, max_votes: int = MAX_VOTES):
        self.max_votes = int(max_votes)
        self._lock = threading.Lock()
        self._votes: deque[Vote] = deque(maxlen=self.max_votes)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.version = 0  # bumps on every change: a cheap cache key for "the votes so far"

    def add(self, key: str, prompt: str, a: str, b: str, choice: str) -> bool:
        """Record a vote; False (and nothing recorded) when ``key`` was already counted, the choice is not valid or a
        text is empty (an empty answer cannot be a training example)."""
        if choice not in CHOICES or not (str(prompt).strip() and str(a).strip() and str(b).strip()):
            return False
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            while len(self._seen) > 4 * self.max_votes:
                self._seen.popitem(last=False)
            self._votes.append(Vote(str(prompt), str(a), str(b), choice))
            self.version += 1
            return True

    def votes(self) -> tuple[Vote, ...]:
        """A snapshot of every vote kept, oldest first."""
        with self._lock:
            return tuple(self._votes)

    def counts(self) -> dict[str, int]:
        """Votes per choice ("A", "B", "tie") and in total."""
        with self._lock:
            c = Counter(v.choice for v in self._votes)
        return {"A": c["A"], "B": c["B"], "tie": c["tie"], "total": sum(c.values())}

    def pairs(self) -> tuple[PreferencePair, ...]:
        """The votes that name a winner, as preference pairs."""
        return tuple(p for p in (v.pair() for v in self.votes()) if p is not None)

    def reset(self) -> None:
        """Forget every vote (the teacher's reset)."""
        with self._lock:
            self._votes.clear()
            self._seen.clear()
            self.version += 1


#: Where the training pairs come from (the page's choice).
SOURCES = ("built-in pairs", "built-in + class votes", "class votes only")


def choose_pairs(source: str, builtin: Sequence[PreferencePair], votes: Sequence[Vote]
                 ) -> tuple[tuple[PreferencePair, ...], tuple[tuple[str, str, str], ...]]:
    """The training pairs for ``source`` (one of :data:`SOURCES`) and the ties among the votes ``(prompt, a, b)``."""
    voted = tuple(p for p in (v.pair() for v in votes) if p is not None)
    ties = tuple((v.prompt, v.a, v.b) for v in votes if v.choice == "tie")
    if source == SOURCES[2]:
        return voted, ties
    if source == SOURCES[1]:
        return tuple(builtin) + voted, ties
    return tuple(builtin), ()


def pair_rows(pairs) -> tuple[tuple[str, str, str], ...]:
    """Pairs (or tie triples) as plain tuples of strings: a hashable cache key."""
    return tuple((p.prompt, p.chosen, p.rejected) if isinstance(p, PreferencePair) else tuple(map(str, p))
                 for p in pairs)


def pairs_summary(pairs: Sequence, ties: Sequence) -> str:
    """One sentence: how many pairs with a winner and how many ties."""
    return f"{len(pairs)} pair{'s' if len(pairs) != 1 else ''} with a winner and {len(ties)} tie{'s' if len(ties) != 1 else ''}."


# ------------------------------------------------------------------------------------------------ encoding
def prompt_ids(lm: LanguageModel, prompt: str) -> list[int]:
    """The prompt as a chat user turn, ready for the assistant's answer (checked, at most MAX_PROMPT_TOKENS)."""
    if not prompt.strip():
        raise InputError("The prompt is empty: write a question or an instruction.")
    check_length(lm.encode(prompt), MAX_PROMPT_TOKENS, "prompt", why=" so training stays quick")
    return lm.encode(lm.chat_prompt([{"role": "user", "content": prompt}]))


def answer_ids(lm: LanguageModel, answer: str) -> list[int]:
    """The answer's ids followed by the end-of-turn token ("…and then stop"), at most MAX_ANSWER_TOKENS."""
    if not answer.strip():
        raise InputError("An answer is empty: every answer needs some text.")
    ids = lm.encode(answer.strip())
    check_length(ids, MAX_ANSWER_TOKENS, "answer", why=" so training stays quick")
    eos = lm.info.eos_token_id
    return ids + ([int(eos)] if eos is not None else [])


@dataclass
class Batch:
    """Right-padded sequences ``prompt + answer`` and where each answer sits.

    Attributes:
        ids: ``[B, T]`` token ids (padding repeats the last token; causal attention never lets a real token see it).
        starts: Per row, the index of the answer's first token.
        lengths: Per row, the number of answer tokens (including the end-of-turn token).
    """

    ids: torch.Tensor
    starts: list[int]
    lengths: list[int]

    @property
    def rows(self) -> int:
        return len(self.starts)

    def predicting_positions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat indices of the positions that predict each answer token, their targets and their row.

        Returns:
            ``(rows [N], positions [N], targets [N])`` where position ``t`` predicts token ``t + 1``.
        """
        rows, pos = [], []
        for r, (s, n) in enumerate(zip(self.starts, self.lengths)):
            rows += [r] * n
            pos += list(range(s - 1, s - 1 + n))
        rows_t, pos_t = torch.tensor(rows), torch.tensor(pos)
        return rows_t, pos_t, self.ids[rows_t, pos_t + 1]

    def answer_positions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [N], positions [N])`` of the answer tokens themselves (for mean-pooled features)."""
        rows, pos = [], []
        for r, (s, n) in enumerate(zip(self.starts, self.lengths)):
            rows += [r] * n
            pos += list(range(s, s + n))
        return torch.tensor(rows), torch.tensor(pos)


def make_batch(lm: LanguageModel, items: Sequence[tuple[str, str]]) -> Batch:
    """Encode ``(prompt, answer)`` items into one right-padded batch (raises ``InputError`` on bad text)."""
    seqs, starts, lengths = [], [], []
    for prompt, answer in items:
        p, a = prompt_ids(lm, prompt), answer_ids(lm, answer)
        seqs.append(p + a)
        starts.append(len(p))
        lengths.append(len(a))
    width = max(len(s) for s in seqs)
    ids = torch.tensor([s + [s[-1]] * (width - len(s)) for s in seqs])  # [B, T]
    return Batch(ids, starts, lengths)


def _sum_by_row(values: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """``[n, …]`` sums of ``values [N, …]`` grouped by ``rows [N]``."""
    return torch.zeros((n, *values.shape[1:]), dtype=values.dtype).index_add(0, rows, values)


# ------------------------------------------------------------------------------------------------ frozen passes
def first_adapted_layer(names: Sequence[str]) -> int:
    """The index of the first decoder layer an adapter touches (names like ``model.layers.26.mlp…``)."""
    return min(int(n.split(".")[2]) for n in names)


@torch.inference_mode()
def frozen_hidden(lm: LanguageModel, batch: Batch, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the shared model over the batch (in chunks) and keep two residual streams.

    Returns:
        ``(entering [B, T, D], final [B, T, D])``: the hidden state entering decoder layer ``layer`` and the last
        hidden state (after the final norm).
    """
    entering, final = [], []
    for i in range(0, batch.rows, CHUNK):
        x = batch.ids[i : i + CHUNK]  # [b, T]
        with lm.exclusive():
            out = lm.model.model(input_ids=x, output_hidden_states=True, use_cache=False)
        lm.stats.add(forwards=1)
        entering.append(out.hidden_states[layer])  # [b, T, D]: the output of layer-1 is the input of layer
        final.append(out.last_hidden_state)  # [b, T, D], final-normed
    return torch.cat(entering), torch.cat(final)


def _causal_mask(t: int, dtype: torch.dtype) -> torch.Tensor:
    """``[1, 1, T, T]`` additive mask: 0 on and below the diagonal, the most negative value above it."""
    return torch.full((t, t), torch.finfo(dtype).min, dtype=dtype).triu(1)[None, None]


def tail_hidden(lm: LanguageModel, entering: torch.Tensor, layer: int,
                weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Run decoder layers ``layer…L-1`` and the final norm over ``entering [B, T, D]``, with ``weights`` (full
    parameter names, e.g. a LoRA adapter's :meth:`LoraAdapter.weights`) substituted through ``functional_call``.

    Returns:
        ``[B, T, D]`` final-normed hidden states. Differentiable with respect to ``weights``.
    """
    base = lm.model.model
    b, t, _ = entering.shape
    pos = torch.arange(t)[None].expand(b, t)  # [B, T]
    mask = _causal_mask(t, entering.dtype)  # [1, 1, T, T]
    weights = weights or {}
    h = entering
    with lm.exclusive():  # functional_call swaps module attributes during the call: keep other forwards out
        pe = base.rotary_emb(h, position_ids=pos)  # (cos, sin), each [B, T, head_dim]
        for i in range(layer, len(base.layers)):
            prefix = f"model.layers.{i}."
            sub = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            h = functional_call(base.layers[i], sub, args=(h,),
                                kwargs={"attention_mask": mask, "position_embeddings": pe, "position_ids": pos})
        h = base.norm(h)
    lm.stats.add(forwards=1)
    return h


def _answer_logps(lm: LanguageModel, final: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sum of log p(answer token) from final hidden states, plus the ``[N, V]`` log-probs at those positions."""
    rows, pos, targets = batch.predicting_positions()
    logits = lm.model.lm_head(final[rows, pos])  # [N, V]: the output layer only where an answer token is predicted
    logp = torch.log_softmax(logits.float(), dim=-1)  # [N, V]
    token_logp = logp.gather(1, targets[:, None])[:, 0]  # [N]
    return _sum_by_row(token_logp, rows, batch.rows), logp


# ------------------------------------------------------------------------------------------------ answer scores
@dataclass(frozen=True)
class AnswerScores:
    """What the frozen model says about answers to prompts.

    Attributes:
        features: ``[n, D]`` mean of the decoder's last hidden state over each answer's tokens.
        logprob: ``[n]`` log p(answer, then end of turn | prompt) under the shared model (nats).
        tokens: Answer tokens counted (including the end-of-turn token).
    """

    features: torch.Tensor
    logprob: torch.Tensor
    tokens: list[int]


@torch.inference_mode()
def score_answers(lm: LanguageModel, items: Sequence[tuple[str, str]]) -> AnswerScores:
    """Features and likelihoods of ``(prompt, answer)`` items in batched frozen passes."""
    feats, logps, tokens = [], [], []
    for i in range(0, len(items), CHUNK):
        batch = make_batch(lm, items[i : i + CHUNK])
        with lm.exclusive():
            final = lm.model.model(input_ids=batch.ids, use_cache=False).last_hidden_state  # [b, T, D]
        lm.stats.add(forwards=1)
        rows, pos = batch.answer_positions()
        counts = torch.tensor(batch.lengths, dtype=final.dtype)[:, None]  # [b, 1]
        feats.append(_sum_by_row(final[rows, pos], rows, batch.rows) / counts)  # [b, D]
        logps.append(_answer_logps(lm, final, batch)[0])
        tokens += batch.lengths
    return AnswerScores(torch.cat(feats).float(), torch.cat(logps).double(), tokens)


# ------------------------------------------------------------------------------------------------ reward model
@dataclass
class RewardModel:
    """A Bradley–Terry reward head: ``r(x) = w · (f(x) − μ) / σ + b`` on frozen features ``f``.

    Attributes:
        mean / std: ``[D]`` feature standardisation (from the training answers).
        w: ``[D]`` weights; b: the bias (cancels in every comparison, kept at 0).
        losses: Training loss (mean −log p(chosen preferred)) before and after fitting.
        train_accuracy: Fraction of training pairs it ranks the right way round.
        seconds: Training time (feature extraction excluded).
    """

    mean: torch.Tensor
    std: torch.Tensor
    w: torch.Tensor
    b: float = 0.0
    losses: list[float] = field(default_factory=list)
    train_accuracy: float = 0.0
    seconds: float = 0.0

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        """``[n]`` rewards of ``[n, D]`` features."""
        return ((features - self.mean) / self.std) @ self.w + self.b

    def p_prefers(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """``[n]`` Bradley–Terry p(A preferred over B) = σ(r(A) − r(B))."""
        return torch.sigmoid(self.reward(fa) - self.reward(fb))


def bradley_terry_loss(r_a: torch.Tensor, r_b: torch.Tensor, p_a: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between the label ``p_a`` (1: A preferred, 0.5: tie) and σ(r(A) − r(B))."""
    d = r_a - r_b
    return -(p_a * F.logsigmoid(d) + (1 - p_a) * F.logsigmoid(-d)).mean()


def train_reward_model(fa: torch.Tensor, fb: torch.Tensor, p_a: torch.Tensor | None = None, c: float = 1.0
                       ) -> RewardModel:
    """Fit the Bradley–Terry head on ``[n, D]`` features of answer A and answer B (A preferred unless ``p_a`` says
    otherwise; 0.5 is a tie).

    With a linear r, σ(r(A) − r(B)) = σ(w · (f(A) − f(B))): Bradley–Terry is logistic regression on feature
    differences without an intercept. scikit-learn's L2-regularised ``LogisticRegression`` fits it (a few pairs and
    385 features would otherwise be memorised); a soft label p enters as the difference labelled 1 with weight p and
    labelled 0 with weight 1 − p, which is exactly the cross-entropy :func:`bradley_terry_loss` minimises.

    Raises:
        ValueError: With fewer than 2 pairs.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    n = fa.shape[0]
    if n < 2:
        raise ValueError("A reward model needs at least two preference pairs.")
    p_a = torch.ones(n) if p_a is None else p_a.float()
    both = torch.cat([fa, fb]).float()  # [2n, D]
    mean, std = both.mean(0), both.std(0) + 1e-4
    za, zb = (fa - mean) / std, (fb - mean) / std
    start = time.perf_counter()
    d = (za - zb).double().numpy()  # [n, D]
    p = p_a.double().numpy()
    # "A wins" is label 1 at +d (weight p); "B wins" is label 1 at -d (weight 1 - p). scikit-learn needs both
    # classes, so every row also appears mirrored (label 0 at -x, the same loss term), each copy at half weight.
    x = np.concatenate([d, -d])  # [2n, D]
    weight = np.concatenate([p, 1 - p])
    keep = weight > 0
    x, weight = x[keep], weight[keep]
    x = np.concatenate([x, -x])
    y = np.concatenate([np.ones(len(weight)), np.zeros(len(weight))])
    weight = np.concatenate([weight, weight]) / 2
    clf = LogisticRegression(C=float(c), fit_intercept=False, max_iter=500).fit(x, y, sample_weight=weight)
    w = torch.tensor(clf.coef_[0], dtype=torch.float32)  # [D]
    before = float(bradley_terry_loss(torch.zeros(n), torch.zeros(n), p_a))
    after = float(bradley_terry_loss(za @ w, zb @ w, p_a))
    decided = p_a != 0.5
    correct = ((za @ w - zb @ w) > 0) == (p_a > 0.5)
    acc = float(correct[decided].float().mean()) if decided.any() else float("nan")
    return RewardModel(mean, std, w, 0.0, [before, after], acc, time.perf_counter() - start)


@dataclass(frozen=True)
class RewardReport:
    """A trained reward model and how it does.

    Attributes:
        model: The head.
        train_pairs / test_pairs: How many pairs it learned from and was tested on.
        test_accuracy: Fraction of held-out pairs ranked the right way round (chance = 0.5).
        test_rows: Per held-out pair: prompt, chosen, rejected, r(chosen), r(rejected).
        seconds: Feature extraction plus training, wall time.
    """

    model: RewardModel
    train_pairs: int
    test_pairs: int
    test_accuracy: float
    test_rows: list[tuple[str, str, str, float, float]]
    seconds: float


def reward_features(encoder, items: Sequence[tuple[str, str]]) -> torch.Tensor:
    """``[n, D + 1]`` reward-model features of ``(prompt, answer)`` items: the encoder's unit sentence vector of the
    answer ``[D]`` and its cosine with the prompt's vector (one more number).

    Raises:
        InputError: An empty answer or one longer than the encoder reads.
    """
    from engine.encoder import MAX_SENTENCES

    texts = [a.strip() for _, a in items]
    if any(not t for t in texts):
        raise InputError("An answer is empty: every answer needs some text.")
    prompts = sorted({p for p, _ in items})
    try:
        answers = torch.cat([encoder.embed(texts[i : i + MAX_SENTENCES]) for i in range(0, len(texts), MAX_SENTENCES)])
        pv = torch.cat([encoder.embed(prompts[i : i + MAX_SENTENCES]) for i in range(0, len(prompts), MAX_SENTENCES)])
    except ValueError as err:
        raise InputError(str(err)) from err
    index = {p: i for i, p in enumerate(prompts)}
    prompt_vecs = pv[torch.tensor([index[p] for p, _ in items])]  # [n, D]
    on_topic = (answers * prompt_vecs).sum(-1, keepdim=True)  # [n, 1] cosine (unit vectors)
    return torch.cat([answers, on_topic], dim=1).float()  # [n, D + 1]


def fit_reward_model(encoder, train: Sequence[PreferencePair], test: Sequence[PreferencePair],
                     ties: Sequence[tuple[str, str, str]] = ()) -> RewardReport:
    """Encode every answer, train the head on ``train`` (+ ``ties`` as p = 0.5), test on ``test``."""
    start = time.perf_counter()
    train, test = list(train)[: MAX_PAIRS * 4], list(test)
    ties = list(ties)[:MAX_PAIRS]
    items = ([(p.prompt, p.chosen) for p in train] + [(p.prompt, p.rejected) for p in train]
             + [(t[0], t[1]) for t in ties] + [(t[0], t[2]) for t in ties])
    f = reward_features(encoder, items)
    n, k = len(train), len(ties)
    fa = torch.cat([f[:n], f[2 * n : 2 * n + k]])
    fb = torch.cat([f[n : 2 * n], f[2 * n + k :]])
    p_a = torch.cat([torch.ones(n), torch.full((k,), 0.5)])
    model = train_reward_model(fa, fb, p_a)
    rows, acc = [], float("nan")
    if test:
        m = len(test)
        t = reward_features(encoder, [(p.prompt, p.chosen) for p in test] + [(p.prompt, p.rejected) for p in test])
        rc, rr = model.reward(t[:m]), model.reward(t[m:])
        acc = float((rc > rr).float().mean())
        rows = [(p.prompt, p.chosen, p.rejected, float(rc[i]), float(rr[i])) for i, p in enumerate(test)]
    return RewardReport(model, n, len(test), acc, rows, time.perf_counter() - start)


def pair_likelihoods(lm: LanguageModel, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
    """The language model's own ``(log p(chosen), log p(rejected))`` of each pair, given its prompt (nats)."""
    pairs = list(pairs)
    s = score_answers(lm, [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs])
    n = len(pairs)
    return [(float(s.logprob[i]), float(s.logprob[n + i])) for i in range(n)]


def reward_of(encoder, model: RewardModel, items: Sequence[tuple[str, str]]) -> list[float]:
    """Rewards of ``(prompt, answer)`` items."""
    return model.reward(reward_features(encoder, items)).tolist()


@dataclass(frozen=True)
class GamingRow:
    """One probe of how the reward model can be gamed: an answer and a variant that should not be better."""

    trick: str
    prompt: str
    answer: str
    variant: str
    reward: float
    variant_reward: float


def gaming_probes(encoder, model: RewardModel, pairs: Sequence[PreferencePair]) -> list[GamingRow]:
    """Flattery and padding added to answers (rejected and chosen ones): the reward of each before and after.

    The variants add no information; a reward that rises anyway shows what the head really rewards.
    """
    rows = []
    for p in list(pairs)[:3]:
        for trick, base, variant in (
            ("flattery", p.rejected, FLATTERY + p.rejected),
            ("length", p.rejected, p.rejected + PADDING),
            ("length", p.chosen, p.chosen + PADDING),
        ):
            rows.append((trick, p.prompt, base, variant))
    scores = reward_of(encoder, model, [(r[1], r[2]) for r in rows] + [(r[1], r[3]) for r in rows])
    n = len(rows)
    return [GamingRow(t, pr, a, v, scores[i], scores[n + i]) for i, (t, pr, a, v) in enumerate(rows)]


# ------------------------------------------------------------------------------------------------ sampling
def rating_pair(lm: LanguageModel, prompt: str, seed: int, max_new_tokens: int = 32,
                temperature: float = 1.0) -> tuple[str, str]:
    """Two answers to ``prompt`` sampled from the model through its chat template (seeded: same seed, same pair).

    They come from the 4-bit decoder, which needs no model lock: in a busy class the float32 batch had to wait for
    the lock before each of its 32 steps (the class soak measured 142 s to open this page; the pair is on the page's
    first screen). The call waits for the 4-bit copy if it is still being packed (seconds, once per process), so a seed
    always gives the same pair; where the 4-bit path is unavailable it is the float32 model.
    """
    ids = prompt_ids(lm, prompt)
    lm.fast_decoder()
    answers = []
    for row in range(2):  # row r of seed s draws with seed 2s + r: seeds never share a row
        steps = lm.generate_stream(ids, max_new_tokens, temperature=temperature, top_p=0.95,
                                   seed=2 * int(seed) + row, fast=True)
        answers.append(lm.decode([s.token_id for s in steps], skip_special_tokens=True).strip())
    return answers[0], answers[1]


@dataclass(frozen=True)
class BestOfN:
    """``n`` sampled answers ranked by the reward model, with the language model's own likelihood of each.

    Attributes:
        answers: The sampled answers, best reward first.
        rewards: Their rewards.
        logprob: log p(answer | prompt) under the shared model.
        tokens: Answer tokens (including the end-of-turn token).
    """

    answers: list[str]
    rewards: list[float]
    logprob: list[float]
    tokens: list[int]


def best_of_n(lm: LanguageModel, encoder, model: RewardModel, prompt: str, n: int = 4, seed: int = 0,
              max_new_tokens: int = 40) -> BestOfN:
    """Sample ``n`` answers (temperature 1, top-p 0.95), score each with the reward model, best first."""
    ids = prompt_ids(lm, prompt)
    n = max(2, min(int(n), 8))
    out = sample_continuations(lm, ids, n, max_new_tokens, 1.0, top_p=0.95, seed=int(seed))
    texts = [t.strip() or "…" for t in out.texts]
    s = score_answers(lm, [(prompt, t) for t in texts])
    r = reward_of(encoder, model, [(prompt, t) for t in texts])
    order = sorted(range(n), key=lambda i: -r[i])
    return BestOfN([texts[i] for i in order], [r[i] for i in order], [float(s.logprob[i]) for i in order],
                   [s.tokens[i] for i in order])


# ------------------------------------------------------------------------------------------------ DPO
def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-pair DPO loss (Rafailov et al. 2023, eq. 7), from sequence log-probs ``[n]`` of each answer.

    ``L = −log σ(β · [(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])``.
    """
    logits = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * logits)


@dataclass
class PreparedPairs:
    """What DPO needs from the frozen model, computed once per run.

    Attributes:
        pairs: The training pairs.
        batch: Rows ``0..n-1`` chosen answers, ``n..2n-1`` rejected ones.
        layer: First adapted decoder layer.
        entering: ``[2n, T, D]`` hidden states entering that layer (frozen: the adapter sits above).
        ref_logp: ``[2n]`` log π_ref(answer | prompt).
        ref_token_logp: ``[N, V]`` the reference's log-probs at every answer-predicting position (for the KL; about
            80 MB for 16 pairs, freed with the run's preparation).
    """

    pairs: list[PreferencePair]
    batch: Batch
    layer: int
    entering: torch.Tensor
    ref_logp: torch.Tensor
    ref_token_logp: torch.Tensor

    @property
    def n(self) -> int:
        return len(self.pairs)


def prepare_pairs(lm: LanguageModel, pairs: Sequence[PreferencePair], adapter: LoraAdapter) -> PreparedPairs:
    """Encode the pairs, run the frozen layers once, and compute the reference log-probs through the same tail
    the policy will use (so the policy equals the reference exactly before the first step)."""
    pairs = list(pairs)[:MAX_PAIRS]
    if not pairs:
        raise ValueError("DPO needs at least one preference pair.")
    batch = make_batch(lm, [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs])
    layer = first_adapted_layer(adapter.names)
    entering, _ = frozen_hidden(lm, batch, layer)
    with torch.inference_mode():
        ref_final = tail_hidden(lm, entering, layer)
        ref_logp, ref_tok = _answer_logps(lm, ref_final, batch)  # [2n], [N, V]
    return PreparedPairs(pairs, batch, layer, entering.clone(), ref_logp.clone(), ref_tok.clone())


@dataclass(frozen=True)
class DpoStep:
    """Metrics of the policy at one step (measured on every training pair, before that step's update).

    Attributes:
        step: 0 = before training; k = after k updates.
        loss: Mean DPO loss.
        margin: Mean log π(chosen) − log π(rejected) (nats).
        reward_chosen / reward_rejected: Mean implicit reward β(log π − log π_ref) of each side.
        accuracy: Fraction of pairs whose implicit reward ranks chosen above rejected.
        kl: Mean per-token KL(π ‖ π_ref) of the next-token distributions over the answers' positions (nats).
        elapsed_s: Wall time since the run started.
    """

    step: int
    loss: float
    margin: float
    reward_chosen: float
    reward_rejected: float
    accuracy: float
    kl: float
    elapsed_s: float


def _policy_pass(lm: LanguageModel, adapter: LoraAdapter, prep: PreparedPairs, beta: float):
    """Policy log-probs, the loss and every metric for one pass over the prepared pairs."""
    final = tail_hidden(lm, prep.entering, prep.layer, adapter.weights(lm))
    logp, tok_logp = _answer_logps(lm, final, prep.batch)  # [2n], [N, V]
    n = prep.n
    pc, pr, rc, rr = logp[:n], logp[n:], prep.ref_logp[:n], prep.ref_logp[n:]
    losses = dpo_loss(pc, pr, rc, rr, beta)
    with torch.no_grad():
        ref = prep.ref_token_logp  # [N, V]
        kl = (tok_logp.exp() * (tok_logp - ref)).sum(-1).clamp_min(0).mean()  # mean over positions
        rew_c, rew_r = beta * (pc - rc), beta * (pr - rr)
        metrics = dict(loss=float(losses.mean()), margin=float((pc - pr).mean()), reward_chosen=float(rew_c.mean()),
                       reward_rejected=float(rew_r.mean()), accuracy=float((rew_c > rew_r).float().mean()),
                       kl=float(kl))
    return losses.mean(), metrics


def dpo_steps(lm: LanguageModel, adapter: LoraAdapter, prep: PreparedPairs, steps: int = 30, beta: float = 0.1,
              lr: float = 5e-3, should_stop=None) -> Iterator[DpoStep]:
    """Train ``adapter`` with DPO on the prepared pairs (full batch, Adam), yielding metrics after each pass.

    Yields step 0 (the untrained adapter: margin as the reference has it, KL 0), then one entry per update; the last
    yielded entry measures the adapter after the final update. Call inside the server's fine-tune slot
    (:func:`engine.training.exclusive_fine_tune`).

    Args:
        lm: The shared model (never modified).
        adapter: The session's fresh adapter; updated in place.
        prep: From :func:`prepare_pairs` with the same adapter's layers.
        steps: Optimiser steps, 1..:data:`MAX_DPO_STEPS`.
        beta: DPO's β: how far from the reference the policy may move (smaller = further).
        lr: Adam learning rate.
        should_stop: Optional ``() -> bool``; training stops early when it returns True.
    """
    steps = max(1, min(int(steps), MAX_DPO_STEPS))
    beta = float(beta)
    leaves = adapter.leaves()
    opt = torch.optim.Adam(leaves, lr=float(lr))
    start = time.perf_counter()
    with torch.enable_grad():
        for k in range(steps + 1):
            loss, m = _policy_pass(lm, adapter, prep, beta)
            yield DpoStep(k, elapsed_s=time.perf_counter() - start, **m)
            if k == steps or (should_stop is not None and should_stop()):
                break
            grads = torch.autograd.grad(loss, leaves)  # only the adapter gets gradients
            for leaf, g in zip(leaves, grads):
                leaf.grad = g
            opt.step()
            adapter.steps_done += 1
    for leaf in leaves:
        leaf.grad = None


@torch.no_grad()
def implicit_accuracy(lm: LanguageModel, adapter: LoraAdapter, pairs: Sequence[PreferencePair],
                      beta: float) -> tuple[float, float]:
    """On other pairs: the fraction the trained policy's implicit reward ranks the right way, and the mean margin
    change (log π − log π_ref of chosen minus that of rejected, nats)."""
    prep = prepare_pairs(lm, pairs, adapter)
    _, m = _policy_pass(lm, adapter, prep, beta)
    return m["accuracy"], (m["reward_chosen"] - m["reward_rejected"]) / beta


def adapted_answer(lm: LanguageModel, adapter: LoraAdapter | None, prompt: str, max_new_tokens: int = 32) -> str:
    """Greedy answer to ``prompt`` (chat template) with the adapter applied, or the shared model's own."""
    ids = prompt_ids(lm, prompt)
    weights = adapter.weights(lm) if adapter is not None else None
    steps = lm.generate_stream(ids, max_new_tokens, temperature=0.0, weights=weights)
    return lm.decode([s.token_id for s in steps], skip_special_tokens=True).strip()


def sigmoid(x: float) -> float:
    """σ(x), safe for large |x|."""
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


# ------------------------------------------------------------------------------------------------ a session's DPO run
@dataclass
class DpoRun(QueuedRun):
    """One session's DPO run, written by its training thread and read by the page (no Streamlit here).

    Attributes:
        pairs: Training pairs; held_out: pairs for the implicit reward's accuracy; prompts: held-out prompts.
        steps / beta / lr: Settings (clipped).
        adapter: The session's adapter, trained in place (the shared model is never changed).
        ticket / queue: Its place in the server's training line (:data:`engine.training.TRAINING_QUEUE`).
        stop: Set it to stop after the current step, or to leave the line.
        status: ``"queued"`` → ``"preparing"`` → ``"running"`` → ``"answering"`` → ``"done"`` / ``"stopped"`` /
            ``"failed"``.
        history: One :class:`DpoStep` per pass (step 0 = before training).
        after_answers: Greedy answers to ``prompts`` with the adapter (filled after training).
        held_out_accuracy / held_out_margin: The implicit reward on ``held_out`` after training.
        seconds: Training time (waiting in line and answering excluded).
    """

    pairs: list[PreferencePair]
    held_out: list[PreferencePair]
    prompts: list[str]
    steps: int
    beta: float
    lr: float
    adapter: LoraAdapter
    ticket: object
    queue: object
    stop: threading.Event
    status: str = "queued"
    history: list[DpoStep] = field(default_factory=list)
    after_answers: list[str] = field(default_factory=list)
    held_out_accuracy: float | None = None
    held_out_margin: float | None = None
    seconds: float = 0.0
    error: str | None = None
    job: object = None

    @property
    def fraction(self) -> float:
        return min(1.0, max(0, len(self.history) - 1) / self.steps)



def start_dpo_run(lm: LanguageModel, pairs: Sequence[PreferencePair], held_out: Sequence[PreferencePair],
                  prompts: Sequence[str], steps: int = 30, beta: float = 0.1, lr: float = 5e-3,
                  queue=None) -> DpoRun:
    """Queue a DPO run and start its thread; returns at once with the live :class:`DpoRun`.

    Raises:
        ValueError: No pairs.
        BusyError: The server's training line is full.
    """
    from engine.jobs import BackgroundJob
    from engine.training import TRAINING_QUEUE, new_adapter

    pairs = list(pairs)[:MAX_PAIRS]
    if not pairs:
        raise ValueError("There are no preference pairs to train on.")
    queue = queue or TRAINING_QUEUE
    steps = max(1, min(int(steps), MAX_DPO_STEPS))
    run = DpoRun(pairs, list(held_out), list(prompts), steps, float(beta), float(lr),
                 new_adapter(lm, layers=min(DPO_LAYERS, lm.info.layers)), None, queue, threading.Event())
    run.ticket = queue.join("DPO")
    run.job = BackgroundJob(lambda report: _dpo_in_line(lm, run)).start()
    return run


def _dpo_in_line(lm: LanguageModel, run: DpoRun) -> None:
    """The thread: wait for the turn, prepare, train, leave the line, then answer the held-out prompts."""
    try:
        if not run.queue.wait_turn(run.ticket, run.stop):
            run.status = "stopped"
            return
        try:
            run.status = "preparing"
            start = time.perf_counter()
            prep = prepare_pairs(lm, run.pairs, run.adapter)
            run.status = "running"
            for s in dpo_steps(lm, run.adapter, prep, run.steps, run.beta, run.lr, run.stop.is_set):
                run.history.append(s)
                run.seconds = time.perf_counter() - start
            del prep
        finally:
            run.queue.leave(run.ticket)  # the next session's turn: answering below needs no training slot
        run.status = "answering"
        if run.held_out:
            run.held_out_accuracy, run.held_out_margin = implicit_accuracy(lm, run.adapter, run.held_out, run.beta)
        for p in run.prompts:
            if run.stop.is_set():
                break
            run.after_answers.append(adapted_answer(lm, run.adapter, p))
        run.status = "stopped" if run.stop.is_set() else "done"
    except Exception as err:  # noqa: BLE001 - shown on the page, never raised in a foreign thread
        run.status, run.error = "failed", f"{type(err).__name__}: {err}"
        run.queue.leave(run.ticket)
