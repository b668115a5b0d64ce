"""Training made visible: one gradient-descent step, and a live low-rank (LoRA) fine-tune, on the shared model.

The shared :class:`engine.lm.LanguageModel` serves every session, so training never writes to it:

- weights are *overridden per call* with :func:`torch.func.functional_call`: the call sees ``W + ΔW`` for a few
  matrices, and ``ΔW`` lives in the caller's own tensors (a per-session adapter);
- every other weight is passed in ``detach()``-ed (same storage, no copy), so autograd records a graph only from the
  first adapted layer on and never touches the shared parameters' ``.grad``;
- ``functional_call`` swaps module attributes for the duration of the forward, so the forward holds the model's lock
  (other sessions' forwards wait a few tens of milliseconds); the backward pass only needs the recorded graph and runs
  outside the lock;
- at most one fine-tune runs per server (:data:`FINE_TUNE_LOCK`, acquired without waiting): on 2 shared cores two
  trainings would each take twice as long.

Which weights: the MLP output projection (``mlp.down_proj``, ``[hidden, intermediate]`` = ``[576, 1536]`` in
SmolLM2-135M) of the last few decoder layers. Adapting late MLPs is enough to store a short fact and keeps the
backward pass short (it stops at the first adapted layer).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from engine.lm import LanguageModel

#: One fine-tune at a time per server process.
FINE_TUNE_LOCK = threading.Lock()
#: Hard caps so one request stays bounded in time and memory.
MAX_TRAIN_STEPS = 40
MAX_TRAIN_TOKENS = 64
#: The learning rates the one-step demo tries (plain SGD).
STEP_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
DEFAULT_LAYERS = 4
DEFAULT_RANK = 4


class BusyError(RuntimeError):
    """Raised when another session is already fine-tuning on this server."""


@contextmanager
def exclusive_fine_tune(lock: threading.Lock = FINE_TUNE_LOCK) -> Iterator[None]:
    """Hold the server-wide fine-tune lock, or fail at once (never queue behind someone else's training).

    Raises:
        BusyError: If another fine-tune holds the lock.
    """
    if not lock.acquire(blocking=False):
        raise BusyError("Another fine-tune is running on this server right now. Try again in a few seconds.")
    try:
        yield
    finally:
        lock.release()


def target_names(lm: LanguageModel, layers: int = DEFAULT_LAYERS) -> list[str]:
    """Parameter names of ``mlp.down_proj.weight`` in the last ``layers`` decoder layers."""
    total = lm.info.layers
    layers = max(1, min(int(layers), total))
    names = [f"model.layers.{i}.mlp.down_proj.weight" for i in range(total - layers, total)]
    params = dict(lm.model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"This model has no parameter {missing[0]}: fine-tuning supports llama-style models.")
    return names


def _frozen_params(lm: LanguageModel, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The shared weights ``names``, read under the model lock: another session's :func:`_logits_with` swaps module
    attributes for the length of its call, and reading then would copy that session's fine-tuned weights."""
    with lm.exclusive():
        params = dict(lm.model.named_parameters())
        # detach(): same storage as the shared weights, requires_grad=False, so no graph and no .grad on them.
        return {name: params[name].detach() for name in names}


def _logits_with(lm: LanguageModel, weights: dict[str, torch.Tensor], ids: Sequence[int]) -> torch.Tensor:
    """``[T, V]`` logits of the model with ``weights`` (only the replaced ones) substituted for this call, without
    changing the shared module."""
    x = torch.tensor([[int(i) for i in ids]])  # [1, T]
    with lm.exclusive():  # functional_call swaps module attributes during the call: keep other forwards out
        out = functional_call(lm.model, weights, args=(), kwargs={"input_ids": x, "use_cache": False})
    lm.stats.add(forwards=1)
    return out.logits[0]  # [T, V]


def next_token_loss(logits: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """Mean cross-entropy of ``ids[1:]`` given ``[T, V]`` logits (position t predicts token t+1)."""
    target = torch.tensor([int(i) for i in ids[1:]])  # [T-1]
    return F.cross_entropy(logits[:-1].float(), target)


def weights_fingerprint(lm: LanguageModel) -> str:
    """SHA-256 over every parameter's name and bytes: equal before and after means bit-identical weights."""
    h = hashlib.sha256()
    for name, p in lm.model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ LoRA adapter
@dataclass
class LoraAdapter:
    """A per-session low-rank update ``ΔW = B @ A`` for a few weight matrices (LoRA).

    ``B`` starts at zero, so a fresh adapter changes nothing; training moves only ``A`` and ``B``.

    Attributes:
        names: Parameter names being adapted.
        a: name → ``[rank, in_features]``.
        b: name → ``[out_features, rank]``.
        rank: The rank r of every update.
        steps_done: Optimiser steps applied so far.
        losses: Training loss after each step (nats).
    """

    names: list[str]
    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    rank: int
    steps_done: int = 0
    losses: list[float] | None = None

    @property
    def num_params(self) -> int:
        """Trainable numbers in the adapter."""
        return sum(t.numel() for t in self.a.values()) + sum(t.numel() for t in self.b.values())

    @property
    def nbytes(self) -> int:
        """Memory the adapter itself takes (optimiser state is freed after training)."""
        return sum(t.numel() * t.element_size() for t in list(self.a.values()) + list(self.b.values()))

    def leaves(self) -> list[torch.Tensor]:
        return [self.a[n] for n in self.names] + [self.b[n] for n in self.names]

    def weights(self, lm: LanguageModel) -> dict[str, torch.Tensor]:
        """The replaced weights for :func:`functional_call`: ``W + B @ A`` for each adapted matrix."""
        w = _frozen_params(lm, self.names)
        return {n: w[n] + self.b[n] @ self.a[n] for n in self.names}  # [out, r] @ [r, in] = [out, in]


def new_adapter(lm: LanguageModel, rank: int = DEFAULT_RANK, layers: int = DEFAULT_LAYERS, seed: int = 0) -> LoraAdapter:
    """A fresh LoRA adapter (``B = 0``: the adapted model equals the shared one until trained).

    Args:
        lm: The shared model (read only).
        rank: Rank of each update.
        layers: How many of the last decoder layers to adapt.
        seed: Seed for ``A``'s random start, so runs are reproducible.
    """
    names = target_names(lm, layers)
    gen = torch.Generator().manual_seed(int(seed))
    params = dict(lm.model.named_parameters())
    a, b = {}, {}
    for n in names:
        out_f, in_f = params[n].shape
        a[n] = (torch.randn(rank, in_f, generator=gen) / math.sqrt(in_f)).requires_grad_()  # [r, in]
        b[n] = torch.zeros(out_f, rank, requires_grad=True)  # [out, r]
    return LoraAdapter(names, a, b, int(rank), 0, [])


@dataclass(frozen=True)
class TrainStep:
    """One optimiser step: its number (1-based), the loss before the step, and the elapsed wall time."""

    step: int
    loss: float
    elapsed_s: float


def train_steps(
    lm: LanguageModel, adapter: LoraAdapter, ids: Sequence[int], steps: int = 20, lr: float = 3e-3
) -> Iterator[TrainStep]:
    """Fine-tune ``adapter`` on ``ids`` with Adam, yielding after every step (for a live progress bar).

    The loss is the pretraining loss (mean next-token cross-entropy) on the user's text: fine-tuning uses the same
    objective, just on new data. Call inside :func:`exclusive_fine_tune`.

    Args:
        lm: The shared model (never modified).
        adapter: The session's adapter; updated in place.
        ids: Training text, 2..:data:`MAX_TRAIN_TOKENS` token ids.
        steps: Optimiser steps, clipped to 1..:data:`MAX_TRAIN_STEPS`.
        lr: Adam learning rate.
    """
    ids = [int(i) for i in ids]
    if len(ids) < 2:
        raise ValueError("The training text needs at least two tokens.")
    if len(ids) > MAX_TRAIN_TOKENS:
        raise ValueError(f"The training text is {len(ids)} tokens; fine-tuning here takes at most {MAX_TRAIN_TOKENS}.")
    steps = max(1, min(int(steps), MAX_TRAIN_STEPS))
    leaves = adapter.leaves()
    opt = torch.optim.Adam(leaves, lr=float(lr))
    start = time.perf_counter()
    if adapter.losses is None:
        adapter.losses = []
    with torch.enable_grad():
        for _ in range(steps):
            loss = next_token_loss(_logits_with(lm, adapter.weights(lm), ids), ids)
            # autograd.grad (not .backward()) touches only the adapter: nothing shared gets a .grad.
            grads = torch.autograd.grad(loss, leaves)
            for leaf, g in zip(leaves, grads):
                leaf.grad = g
            opt.step()
            adapter.steps_done += 1
            adapter.losses.append(loss.item())
            yield TrainStep(adapter.steps_done, adapter.losses[-1], time.perf_counter() - start)
    for leaf in leaves:
        leaf.grad = None  # free the gradients; the optimiser state goes with ``opt``


@torch.no_grad()
def adapted_logits(lm: LanguageModel, adapter: LoraAdapter | None, ids: Sequence[int]) -> torch.Tensor:
    """``[T, V]`` logits with the adapter applied (or the shared model's own logits when ``adapter`` is None)."""
    if adapter is None:
        return lm.forward(ids).logits
    return _logits_with(lm, adapter.weights(lm), ids).float()


@torch.no_grad()
def adapted_greedy(
    lm: LanguageModel, adapter: LoraAdapter | None, ids: Sequence[int], max_new_tokens: int = 12
) -> list[int]:
    """Greedy continuation with the adapter applied: the one KV-cached loop, :meth:`LanguageModel.generate_stream`.

    Args:
        lm: The shared model.
        adapter: The session's adapter, or None for the original model.
        ids: Prompt ids.
        max_new_tokens: At most 32.
    """
    weights = adapter.weights(lm) if adapter is not None else None
    n = max(0, min(int(max_new_tokens), 32))
    return [s.token_id for s in lm.generate_stream(ids, n, temperature=0.0, weights=weights)] if n else []


def probe_target(lm: LanguageModel, fact: str, probe: str) -> int | None:
    """The token that follows ``probe`` inside ``fact`` when the probe is a prefix of it (e.g. ' purple')."""
    f, p = lm.encode(fact), lm.encode(probe)
    if p and len(f) > len(p) and f[: len(p)] == p:
        return int(f[len(p)])
    return None


@torch.no_grad()
def adapted_outputs(
    lm: LanguageModel, adapter: LoraAdapter | None, ids: Sequence[int], new_tokens: int = 10
) -> tuple[torch.Tensor, list[int]]:
    """What the page shows of a (fine-tuned) model on one prompt: ``[V]`` next-token probabilities and the greedy
    continuation's ids."""
    probs = torch.softmax(adapted_logits(lm, adapter, ids)[-1].double(), dim=-1).float()  # [V]
    return probs, adapted_greedy(lm, adapter, ids, new_tokens)


# ------------------------------------------------------------------------------------------------ one SGD step
@dataclass(frozen=True)
class GradientStep:
    """Loss on a text before and after one plain gradient-descent step on that same text.

    Attributes:
        ids: The token ids trained on.
        loss_before: Mean next-token loss before the step (nats).
        token_loss_before: ``[T-1]`` per-token losses before.
        learning_rates: The step sizes tried.
        loss_after: Mean loss after one step of each learning rate.
        token_loss_after: Per learning rate, ``[T-1]`` per-token losses after.
        grad_norm: L2 norm of the gradient over the updated weights.
        num_params: How many weights the step updated.
        total_params: Parameters in the whole model.
    """

    ids: list[int]
    loss_before: float
    token_loss_before: list[float]
    learning_rates: list[float]
    loss_after: list[float]
    token_loss_after: list[list[float]]
    grad_norm: float
    num_params: int
    total_params: int


def _token_losses(logits: torch.Tensor, ids: Sequence[int]) -> list[float]:
    target = torch.tensor([int(i) for i in ids[1:]])  # [T-1]
    return F.cross_entropy(logits[:-1].double(), target, reduction="none").tolist()


def gradient_step(
    lm: LanguageModel,
    ids: Sequence[int],
    learning_rates: Sequence[float] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
    layers: int = DEFAULT_LAYERS,
) -> GradientStep:
    """Compute the gradient of the loss on ``ids`` once, then the loss after a step ``W ← W − lr·∇W`` for each lr.

    The step is applied to a copy-free override (``W − lr·g`` passed to :func:`functional_call`); the shared model is
    unchanged. One backward pass, then one forward per learning rate.

    Args:
        lm: The shared model.
        ids: Token ids (2..:data:`MAX_TRAIN_TOKENS`).
        learning_rates: Step sizes to try (plain SGD, no momentum).
        layers: How many of the last layers' ``mlp.down_proj`` weights the step updates.
    """
    ids = [int(i) for i in ids]
    if len(ids) < 2:
        raise ValueError("The text needs at least two tokens.")
    if len(ids) > MAX_TRAIN_TOKENS:
        raise ValueError(f"The text is {len(ids)} tokens; this step takes at most {MAX_TRAIN_TOKENS}.")
    names = target_names(lm, layers)
    frozen = _frozen_params(lm, names)
    with torch.enable_grad():
        trainable = {n: frozen[n].clone().requires_grad_() for n in names}  # [576, 1536] each
        logits = _logits_with(lm, trainable, ids)
        loss = next_token_loss(logits, ids)
        grads = torch.autograd.grad(loss, [trainable[n] for n in names])
    before = _token_losses(logits.detach(), ids)
    grad_norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
    after_mean, after_tok = [], []
    with torch.no_grad():
        for lr in learning_rates:
            stepped = {n: frozen[n] - float(lr) * g for n, g in zip(names, grads)}
            tok = _token_losses(_logits_with(lm, stepped, ids), ids)
            after_tok.append(tok)
            after_mean.append(sum(tok) / len(tok))
    return GradientStep(
        ids=ids,
        loss_before=sum(before) / len(before),
        token_loss_before=before,
        learning_rates=[float(x) for x in learning_rates],
        loss_after=after_mean,
        token_loss_after=after_tok,
        grad_norm=grad_norm,
        num_params=sum(frozen[n].numel() for n in names),
        total_params=lm.info.parameters,
    )


def run_fine_tune(
    lm: LanguageModel,
    adapter: LoraAdapter,
    ids: Sequence[int],
    steps: int = 20,
    lr: float = 3e-3,
    on_step: Callable[[TrainStep], None] | None = None,
) -> list[TrainStep]:
    """Convenience: take the server lock, train, and return every step (raises :class:`BusyError` if taken)."""
    with exclusive_fine_tune():
        out = []
        for s in train_steps(lm, adapter, ids, steps, lr):
            out.append(s)
            if on_step is not None:
                on_step(s)
        return out
