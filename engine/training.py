"""Training made visible: one gradient-descent step, and a live low-rank (LoRA) fine-tune, on the shared model.

The shared :class:`engine.lm.LanguageModel` serves every session, so training never writes to it:

- weights are *overridden per call* with :func:`torch.func.functional_call`: the call sees ``W + ΔW`` for a few
  matrices, and ``ΔW`` lives in the caller's own tensors (a per-session adapter);
- every other weight is passed in ``detach()``-ed (same storage, no copy), so autograd records a graph only from the
  first adapted layer on and never touches the shared parameters' ``.grad``;
- ``functional_call`` swaps module attributes for the duration of the forward, so the forward holds the model's lock
  (other sessions' forwards wait a few tens of milliseconds); the backward pass only needs the recorded graph and runs
  outside the lock;
- at most one fine-tune runs per server (:data:`FINE_TUNE_LOCK`): on 2 shared cores two trainings would each take
  twice as long. :func:`exclusive_fine_tune` takes it or fails at once; :data:`TRAINING_QUEUE` (a FIFO line of
  tickets, see :class:`TrainingQueue`) waits for it in turn, so every session can show its place in line.

The dataset fine-tune (:func:`train_on_dataset`, :class:`DatasetRun`) trains mini-batches of examples with the prompt
tokens masked from the loss, tracks a held-out validation loss, stops on request, and exports the adapter in PEFT's
format (:func:`peft_files`).

Which weights: the MLP output projection (``mlp.down_proj``, ``[hidden, intermediate]`` = ``[576, 1536]`` in
SmolLM2-135M) of the last few decoder layers. Adapting late MLPs is enough to store a short fact and keeps the
backward pass short (it stops at the first adapted layer).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.func import functional_call

from engine.lm import LanguageModel

#: One fine-tune at a time per server process.
FINE_TUNE_LOCK = threading.Lock()
#: Hard caps so one request stays bounded in time and memory.
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


def layer_names(lm: LanguageModel, layer_ids: Sequence[int]) -> list[str]:
    """Parameter names of ``mlp.down_proj.weight`` in the decoder layers ``layer_ids`` (sorted, deduplicated)."""
    total = lm.info.layers
    ids = sorted({int(i) for i in layer_ids})
    if not ids or ids[0] < 0 or ids[-1] >= total:
        raise ValueError(f"Layers must be between 0 and {total - 1}.")
    names = [f"model.layers.{i}.mlp.down_proj.weight" for i in ids]
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


def new_adapter(lm: LanguageModel, rank: int = DEFAULT_RANK, layers: int = DEFAULT_LAYERS, seed: int = 0,
                layer_ids: Sequence[int] | None = None) -> LoraAdapter:
    """A fresh LoRA adapter (``B = 0``: the adapted model equals the shared one until trained).

    Args:
        lm: The shared model (read only).
        rank: Rank of each update.
        layers: How many of the last decoder layers to adapt (ignored when ``layer_ids`` is given).
        seed: Seed for ``A``'s random start, so runs are reproducible.
        layer_ids: Exactly which decoder layers (0-based) to adapt.
    """
    names = target_names(lm, layers) if layer_ids is None else layer_names(lm, layer_ids)
    gen = torch.Generator().manual_seed(int(seed))
    params = dict(lm.model.named_parameters())
    a, b = {}, {}
    for n in names:
        out_f, in_f = params[n].shape
        a[n] = (torch.randn(rank, in_f, generator=gen) / math.sqrt(in_f)).requires_grad_()  # [r, in]
        b[n] = torch.zeros(out_f, rank, requires_grad=True)  # [out, r]
    return LoraAdapter(names, a, b, int(rank), 0, [])


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


# ------------------------------------------------------------------------------------------------ the line (queue)
#: Most sessions waiting in line at once (a class of 60, each with one ticket).
MAX_LINE = 60


@dataclass(eq=False)
class Ticket:
    """A place in :class:`TrainingQueue`'s line.

    Attributes:
        number: Issued in order, from 1.
        label: What the holder trains ("fine-tune", "DPO"…), for diagnostics.
        running: True once it holds the training slot.
        left: True once it left the line (finished, stopped or gave up).
    """

    number: int
    label: str = ""
    running: bool = False
    left: bool = False


class TrainingQueue:
    """A first-in, first-out line for the server's one training slot (``lock``, by default :data:`FINE_TUNE_LOCK`).

    Every training that must not run next to another one (this page's LoRA fine-tune, the RLHF page's DPO) takes a
    ticket and trains when its ticket reaches the front. Sessions show ``ahead(ticket)`` as their place in line.
    Holders of the slot through :func:`exclusive_fine_tune` (which never waits) share the same lock, so the two APIs
    exclude each other.

    Usage, step by step (the ticket is visible at once, before waiting)::

        ticket = TRAINING_QUEUE.join("DPO")             # never blocks; BusyError when MAX_LINE are waiting
        TRAINING_QUEUE.ahead(ticket)                    # tickets in front of it (0: it is next or running)
        if TRAINING_QUEUE.wait_turn(ticket, stop=ev):   # blocks; False if ``ev`` was set (the ticket has left)
            try:
                ...  # train
            finally:
                TRAINING_QUEUE.leave(ticket)            # always: the next ticket's turn

    or in one piece: ``with TRAINING_QUEUE.turn("DPO", stop=ev) as ticket:`` (``ticket`` is None when stopped while
    waiting; the slot is released on exit either way).
    """

    def __init__(self, lock: threading.Lock = FINE_TUNE_LOCK, max_line: int = MAX_LINE):
        self._lock = lock
        self._max = int(max_line)
        self._cond = threading.Condition()
        self._line: list[Ticket] = []
        self._issued = 0

    def join(self, label: str = "") -> Ticket:
        """Take a ticket at the back of the line (never blocks).

        Raises:
            BusyError: If :data:`MAX_LINE` tickets are already in line.
        """
        with self._cond:
            if len(self._line) >= self._max:
                raise BusyError(f"{len(self._line)} trainings are already waiting on this server. Try again later.")
            self._issued += 1
            ticket = Ticket(self._issued, label)
            self._line.append(ticket)
            return ticket

    def ahead(self, ticket: Ticket) -> int:
        """How many tickets are in front of ``ticket`` (0: it runs or is next; -1: it has left the line)."""
        with self._cond:
            return self._line.index(ticket) if ticket in self._line else -1

    def waiting(self) -> int:
        """Tickets in line, the running one included."""
        with self._cond:
            return len(self._line)

    def wait_turn(self, ticket: Ticket, stop: threading.Event | None = None, timeout: float | None = None) -> bool:
        """Block until ``ticket`` is at the front and holds the slot (True), or ``stop`` is set / ``timeout`` passes
        (False: the ticket has then left the line)."""
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        with self._cond:
            while True:
                if ticket.left or ticket not in self._line:
                    return False
                if self._line[0] is ticket and self._lock.acquire(blocking=False):
                    ticket.running = True
                    return True
                if (stop is not None and stop.is_set()) or (deadline is not None and time.monotonic() > deadline):
                    self._remove(ticket)
                    return False
                # Woken by leave(); the short timeout also notices a stop, and the slot freed by
                # exclusive_fine_tune (which does not notify).
                self._cond.wait(0.1)

    def leave(self, ticket: Ticket) -> None:
        """Leave the line (release the slot if ``ticket`` holds it). Safe to call twice."""
        with self._cond:
            if ticket.running:
                ticket.running = False
                self._lock.release()
            self._remove(ticket)

    def _remove(self, ticket: Ticket) -> None:
        ticket.left = True
        if ticket in self._line:
            self._line.remove(ticket)
        self._cond.notify_all()

    @contextmanager
    def turn(self, label: str = "", stop: threading.Event | None = None) -> Iterator[Ticket | None]:
        """Join, wait for the turn, yield the ticket (None if ``stop`` was set first), leave on exit."""
        ticket = self.join(label)
        try:
            yield ticket if self.wait_turn(ticket, stop) else None
        finally:
            self.leave(ticket)


#: The server's one line for training runs (shared with the RLHF page's DPO).
TRAINING_QUEUE = TrainingQueue()


# ------------------------------------------------------------------------------------------------ dataset fine-tune
#: Caps and defaults of the dataset fine-tune (the page states them).
MAX_DATASET_STEPS = 150
DEFAULT_DATASET_STEPS = 60
DEFAULT_BATCH = 4
MAX_RANK = 16
MAX_ADAPTED_LAYERS = 8
DATASET_LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
DEFAULT_DATASET_LR = 3e-3
#: Where masked targets go (ignored by the loss).
IGNORE = -100


@dataclass(frozen=True)
class FineTuneSettings:
    """The dataset fine-tune's settings (clipped to the caps by :meth:`clipped`).

    Attributes:
        steps: Optimiser steps (one mini-batch each).
        lr: Adam learning rate.
        rank: LoRA rank r of each update.
        layers: How many of the last decoder layers get an adapter on ``mlp.down_proj``.
        batch_size: Examples per step.
        seed: Seeds the adapter's start, the batch order (and the page's split).
        eval_every: Steps between two validation losses.
    """

    steps: int = DEFAULT_DATASET_STEPS
    lr: float = DEFAULT_DATASET_LR
    rank: int = DEFAULT_RANK
    layers: int = DEFAULT_LAYERS
    batch_size: int = DEFAULT_BATCH
    seed: int = 0
    eval_every: int = 5

    def clipped(self) -> FineTuneSettings:
        lr = float(self.lr)
        return FineTuneSettings(
            steps=max(1, min(int(self.steps), MAX_DATASET_STEPS)),
            lr=lr if math.isfinite(lr) and 0 < lr <= 0.1 else DEFAULT_DATASET_LR,
            rank=max(1, min(int(self.rank), MAX_RANK)),
            layers=max(1, min(int(self.layers), MAX_ADAPTED_LAYERS)),
            batch_size=max(1, min(int(self.batch_size), 16)),
            seed=int(self.seed),
            eval_every=max(1, int(self.eval_every)),
        )


def batch_tensors(examples: Sequence, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``ids [B, T]`` and ``targets [B, T-1]`` (the next token, or :data:`IGNORE` where masked/padded).

    ``examples`` are :class:`engine.datasets.TokenizedExample` (``ids``, ``n_masked``). Right padding needs no
    attention mask: with causal attention a real token never sees the padding after it.
    """
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), int(pad_id), dtype=torch.long)  # [B, T]
    targets = torch.full((len(examples), width - 1), IGNORE, dtype=torch.long)  # [B, T-1]
    for row, e in enumerate(examples):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        first = max(1, int(e.n_masked))  # the first trained token's position
        # Position t predicts token t+1: targets[t] = ids[t+1] for the trained tokens t+1 in [first, n).
        targets[row, first - 1 : n - 1] = torch.tensor(e.ids[first:n])
    return ids, targets


class FrozenTail:
    """The shared model's layers ``first..L-1``, final norm and output matrix as plain tensors, for fast training.

    Training a LoRA adapter on the last few layers never changes the earlier layers' output, so each example's
    hidden state entering layer ``first`` is computed once (:meth:`prefix`, one forward of the shared model) and
    every training step only runs the adapted tail: a few layers instead of all of them, and the output matrix only
    at the trained positions. The tensors are read once under the model lock (``detach()``: the shared storage, no
    copy), so a step never touches the shared modules and needs no lock while other sessions use the model.

    Attributes:
        first: The first layer run here (the lowest adapted one).
    """

    def __init__(self, lm: LanguageModel, first: int):
        cfg = lm.model.config
        if getattr(cfg, "hidden_act", "silu") != "silu":
            raise ValueError("Fine-tuning here supports llama-style models (SiLU MLP).")
        self.lm, self.first = lm, int(first)
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(cfg.num_key_value_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.eps = float(cfg.rms_norm_eps)
        with lm.exclusive():
            p = {n: t.detach() for n, t in lm.model.named_parameters()}
        parts = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
        self.layers = [{part: p[f"model.layers.{i}.{part}.weight"] for part in parts}
                       for i in range(self.first, lm.info.layers)]
        self.norm = p["model.norm.weight"]  # [D]
        self.head = p.get("lm_head.weight", p["model.embed_tokens.weight"])  # [V, D] (tied in SmolLM2)
        self.rotary = lm.model.model.rotary_emb  # buffers only (inverse frequencies): nothing is swapped there

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    @torch.no_grad()
    def prefix(self, examples: Sequence, batch_size: int = 8) -> list[torch.Tensor]:
        """Each example's ``[T_i, D]`` hidden state entering layer ``first`` (the shared model, computed once)."""
        from transformers.models.llama.modeling_llama import LlamaModel  # noqa: F401 - the kind this supports

        pad = self.lm.info.eos_token_id or 0
        out = []
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            ids, _ = batch_tensors(chunk, pad)  # [B, T] right-padded: causal, so padding changes nothing before it
            with self.lm.exclusive():
                res = self.lm.model.model(input_ids=ids, use_cache=False, output_hidden_states=True)
            self.lm.stats.add(forwards=1)
            h = res.hidden_states[self.first]  # [B, T, D]: hidden_states[i] is the input of layer i
            out += [h[row, : len(e.ids)].clone() for row, e in enumerate(chunk)]
        return out

    def hidden(self, x: torch.Tensor, adapter: LoraAdapter | None) -> torch.Tensor:
        """Run the tail on ``x [B, T, D]`` (right-padded), with the adapter's ``ΔW = B @ A`` added to each adapted
        ``down_proj`` the way PEFT adds it; returns the final-normed ``[B, T, D]``."""
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        b, t, _ = x.shape
        pos = torch.arange(t).unsqueeze(0).expand(b, t)  # [B, T]
        cos, sin = self.rotary(x, pos)  # [B, T, head_dim] each
        lora = {}
        if adapter is not None:
            for n in adapter.names:
                lora[int(n.split(".")[2])] = (adapter.a[n], adapter.b[n])  # [r, in], [out, r]
        for offset, w in enumerate(self.layers):
            h = self._rms(x, w["input_layernorm"])
            q = F.linear(h, w["self_attn.q_proj"]).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [B,H,T,d]
            k = F.linear(h, w["self_attn.k_proj"]).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            v = F.linear(h, w["self_attn.v_proj"]).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            rep = self.heads // self.kv_heads  # grouped-query attention: each key/value head serves `rep` heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # [B, H, T, d]
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.head_dim ** -0.5)  # [B, H, T, d]
            x = x + F.linear(a.transpose(1, 2).reshape(b, t, -1), w["self_attn.o_proj"])
            h = self._rms(x, w["post_attention_layernorm"])
            m = F.silu(F.linear(h, w["mlp.gate_proj"])) * F.linear(h, w["mlp.up_proj"])  # [B, T, I]
            out = F.linear(m, w["mlp.down_proj"])  # [B, T, D]
            if self.first + offset in lora:
                a_, b_ = lora[self.first + offset]
                out = out + F.linear(F.linear(m, a_), b_)  # m @ Aᵀ @ Bᵀ = (B @ A) m: the LoRA update
            x = x + out
        return self._rms(x, self.norm)

    def logits(self, x: torch.Tensor, adapter: LoraAdapter | None) -> torch.Tensor:
        """``[B, T, V]`` logits for a padded batch of prefixes (every position; tests compare with the full model)."""
        return F.linear(self.hidden(x, adapter), self.head)

    def loss(self, prefixes: Sequence[torch.Tensor], examples: Sequence, adapter: LoraAdapter | None) -> torch.Tensor:
        """Mean cross-entropy over the trained tokens of ``examples`` (prompt masked), output matrix only there."""
        width = max(p.shape[0] for p in prefixes)
        x = torch.zeros(len(prefixes), width, prefixes[0].shape[1])  # [B, T, D], right-padded with zeros
        for row, p in enumerate(prefixes):
            x[row, : p.shape[0]] = p
        _, targets = batch_tensors(examples, 0)  # [B, T-1]
        keep = targets != IGNORE
        h = self.hidden(x, adapter)[:, :-1][keep]  # [N, D]: only positions whose next token is trained
        return F.cross_entropy(F.linear(h, self.head).float(), targets[keep])


def masked_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the trained tokens only: ``logits [B, T, V]``, ``targets [B, T-1]``."""
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, v).float(), targets.reshape(-1), ignore_index=IGNORE)


@torch.no_grad()
def dataset_loss(lm: LanguageModel, adapter: LoraAdapter | None, examples: Sequence, batch_size: int = 8,
                 tail: FrozenTail | None = None, prefixes: Sequence[torch.Tensor] | None = None) -> float:
    """Mean loss per trained token over ``examples`` (prompt tokens masked), with the adapter or without (None).

    ``tail``/``prefixes`` reuse a training run's precomputed tail (else the full model runs, with the adapter's
    weights substituted).
    """
    if not examples:
        return float("nan")
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = list(examples[i : i + batch_size])
        _, targets = batch_tensors(chunk, 0)
        n = int((targets != IGNORE).sum())
        if tail is not None and prefixes is not None:
            loss = tail.loss(list(prefixes[i : i + batch_size]), chunk, adapter)
        else:
            ids, targets = batch_tensors(chunk, lm.info.eos_token_id or 0)
            weights = adapter.weights(lm) if adapter is not None else None
            with lm.exclusive():
                if weights is None:
                    logits = lm.model(input_ids=ids, use_cache=False).logits
                else:
                    logits = functional_call(lm.model, weights, args=(), kwargs={"input_ids": ids, "use_cache": False}
                                             ).logits
            lm.stats.add(forwards=1)
            loss = masked_loss(logits, targets)
        total += float(loss) * n
        count += n
    return total / max(count, 1)


class QueuedRun:
    """What every training run that waits in :data:`TRAINING_QUEUE` shows its page (a dataset fine-tune, a DPO run).

    Subclasses are dataclasses with ``status`` ("queued", "running", "done", "stopped" or "failed"), ``ticket``,
    ``queue`` and ``job`` (the :class:`engine.jobs.BackgroundJob` that trains, once started).
    """

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "failed")

    @property
    def ahead(self) -> int:
        """Trainings in front of this one in the server's line (0 once it runs)."""
        return max(0, self.queue.ahead(self.ticket))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has finished (True) or ``timeout`` passed (False)."""
        return self.job.wait(timeout) if self.job is not None else True


@dataclass
class DatasetRun(QueuedRun):
    """One session's dataset fine-tune, written by its training thread and read by the page (no Streamlit here).

    The page keeps it in the session; the thread only appends to the lists and sets ``status``.

    Attributes:
        settings: The clipped settings.
        train / val: The training and held-out validation examples (:class:`engine.datasets.TokenizedExample`).
        adapter: The session's adapter, trained in place.
        ticket: Its place in :data:`TRAINING_QUEUE`.
        stop: Set it (the page's Stop button) to end the run after the current step, or to leave the line.
        status: ``"queued"`` → ``"running"`` → ``"done"`` / ``"stopped"`` / ``"failed"``.
        train_losses: The mini-batch's loss at each step (before that step's update).
        val_points: ``(step, validation loss)``, from step 0 (before training) every ``eval_every`` steps and at the
            last step.
        seconds: Training time (waiting in line excluded).
        error: What went wrong, when ``status == "failed"``.
    """

    settings: FineTuneSettings
    train: list
    val: list
    adapter: LoraAdapter
    ticket: Ticket
    stop: threading.Event
    queue: TrainingQueue
    status: str = "queued"
    train_losses: list[float] = field(default_factory=list)
    val_points: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    job: object = None

    @property
    def steps_done(self) -> int:
        return len(self.train_losses)

    @property
    def fraction(self) -> float:
        return min(1.0, self.steps_done / self.settings.steps)


def start_dataset_run(
    lm: LanguageModel, train: Sequence, val: Sequence, settings: FineTuneSettings,
    queue: TrainingQueue | None = None,
) -> DatasetRun:
    """Queue a dataset fine-tune and start its thread; returns at once with the live :class:`DatasetRun`.

    Args:
        lm: The shared model (never modified).
        train: Training examples (at least one).
        val: Held-out validation examples (may be empty).
        settings: Clipped with :meth:`FineTuneSettings.clipped`.
        queue: The line to wait in (default :data:`TRAINING_QUEUE`).

    Raises:
        ValueError: No training examples.
        BusyError: The line is full.
    """
    from engine.jobs import BackgroundJob

    if not train:
        raise ValueError("There is nothing to train on.")
    s = settings.clipped()
    queue = queue or TRAINING_QUEUE
    adapter = new_adapter(lm, s.rank, min(s.layers, lm.info.layers), s.seed)
    run = DatasetRun(s, list(train), list(val), adapter, queue.join("fine-tune"), threading.Event(), queue)
    run.job = BackgroundJob(lambda report: _run_in_line(lm, run)).start()
    return run


def _run_in_line(lm: LanguageModel, run: DatasetRun) -> None:
    """The thread: wait for the turn, train, always leave the line."""
    try:
        if not run.queue.wait_turn(run.ticket, run.stop):
            run.status = "stopped"
            return
        run.status = "running"
        start = time.perf_counter()
        for _ in train_on_dataset(lm, run.adapter, run.train, run.val, run.settings, run.stop, run):
            run.seconds = time.perf_counter() - start
        run.seconds = time.perf_counter() - start
        run.status = "stopped" if run.stop.is_set() and run.steps_done < run.settings.steps else "done"
    except Exception as err:  # noqa: BLE001 - shown on the page, never raised in a foreign thread
        run.status, run.error = "failed", f"{type(err).__name__}: {err}"
    finally:
        run.queue.leave(run.ticket)


def train_on_dataset(
    lm: LanguageModel,
    adapter: LoraAdapter,
    train: Sequence,
    val: Sequence,
    settings: FineTuneSettings,
    stop: threading.Event | None = None,
    record: DatasetRun | None = None,
) -> Iterator[int]:
    """Fine-tune ``adapter`` on mini-batches of ``train`` with Adam and the prompt-masked loss; yield each step.

    Hold the training slot while calling it (:data:`TRAINING_QUEUE` or :func:`exclusive_fine_tune`). Batches walk
    through seeded shuffles of the training set (one shuffle per epoch). The validation loss (no gradient) is computed
    before the first step, every ``eval_every`` steps and after the last one.

    Args:
        lm: The shared model (never modified).
        adapter: The session's adapter; updated in place (``adapter.losses`` gets each step's loss too).
        train: Training examples (``ids``, ``n_masked``).
        val: Validation examples (may be empty).
        settings: Steps, learning rate, batch size, seed…
        stop: When set, training ends after the current step.
        record: Where the losses go (a :class:`DatasetRun`); a fresh one is not needed for tests.

    Yields:
        The number of steps done so far.
    """
    s = settings.clipped()
    train = list(train)
    train_losses = record.train_losses if record is not None else []
    val_points = record.val_points if record is not None else []
    tail = FrozenTail(lm, min(adapter_layer_ids(adapter)))
    train_prefix = tail.prefix(train)  # [T_i, D] each: the frozen layers run once per example
    val_prefix = tail.prefix(list(val)) if val else []
    if val:
        val_points.append((0, dataset_loss(lm, adapter, val, tail=tail, prefixes=val_prefix)))
    leaves = adapter.leaves()
    opt = torch.optim.Adam(leaves, lr=s.lr)
    gen = torch.Generator().manual_seed(s.seed)
    order: list[int] = []
    if adapter.losses is None:
        adapter.losses = []
    with torch.enable_grad():
        for step in range(1, s.steps + 1):
            if stop is not None and stop.is_set():
                break
            if len(order) < s.batch_size:
                order += torch.randperm(len(train), generator=gen).tolist()  # one more epoch, seeded
            pick, order = order[: s.batch_size], order[s.batch_size :]
            loss = tail.loss([train_prefix[i] for i in pick], [train[i] for i in pick], adapter)
            grads = torch.autograd.grad(loss, leaves)  # only the adapter gets gradients
            for leaf, g in zip(leaves, grads):
                leaf.grad = g
            opt.step()
            opt.zero_grad(set_to_none=True)
            value = float(loss.detach())
            adapter.steps_done += 1
            adapter.losses.append(value)
            train_losses.append(value)
            last = step == s.steps or (stop is not None and stop.is_set())
            if val and (step % s.eval_every == 0 or last):
                val_points.append((step, dataset_loss(lm, adapter, val, tail=tail, prefixes=val_prefix)))
            yield step
    for leaf in leaves:
        leaf.grad = None


@dataclass(frozen=True)
class Overfitting:
    """Where the validation loss was lowest, and whether it rose after (the model memorising its training rows).

    Attributes:
        best_step / best_loss: The lowest validation loss and its step.
        last_step / last_loss: The last validation loss.
        rising: True when the last is clearly above the best (by more than 5 % and 0.05 nats).
    """

    best_step: int
    best_loss: float
    last_step: int
    last_loss: float
    rising: bool


def overfitting(val_points: Sequence[tuple[int, float]]) -> Overfitting | None:
    """Read the validation curve (None when there are fewer than two points)."""
    if len(val_points) < 2:
        return None
    best_step, best = min(val_points, key=lambda p: p[1])
    last_step, last = val_points[-1]
    return Overfitting(int(best_step), float(best), int(last_step), float(last),
                       last > best + max(0.05, 0.05 * best))


# ------------------------------------------------------------------------------------------------ probes
@dataclass(frozen=True)
class ProbeOutput:
    """What one model (original or fine-tuned) does with one probe.

    Attributes:
        text: Its greedy answer or continuation (special tokens dropped).
        top_token: The original model's most likely next token for the probe (shown text).
        p_top: This model's probability of that token.
        reference_loss: Mean loss per token of the reference answer (a held-out row's), or None without one.
    """

    text: str
    top_token: str
    p_top: float
    reference_loss: float | None


def probe_ids(lm: LanguageModel, prompt: str, kind: str) -> list[int]:
    """A probe's ids as the data was trained: inside the chat template for ``"chat"`` data, raw for ``"text"``."""
    if kind == "chat":
        return lm.encode(lm.chat_prompt([{"role": "user", "content": prompt}]))
    return lm.encode(prompt)


@torch.no_grad()
def probe_output(
    lm: LanguageModel, adapter: LoraAdapter | None, prompt: str, kind: str, reference: str | None = None,
    new_tokens: int = 20,
) -> ProbeOutput:
    """Run one probe through the original model (``adapter=None``) or the fine-tuned one.

    Args:
        lm: The shared model.
        adapter: The session's adapter, or None.
        prompt: The probe (a question for chat data, a text start for plain text).
        kind: ``"chat"`` or ``"text"`` (how the training data was written).
        reference: A reference answer (a held-out row's) to score, or None.
        new_tokens: Greedy tokens generated (at most 32).
    """
    from engine.datasets import Example, tokenize_example

    ids = probe_ids(lm, prompt, kind)
    base_probs = torch.softmax(lm.forward(ids).logits[-1].double(), -1)  # [V] the original model
    top = int(base_probs.argmax())
    probs = base_probs if adapter is None else torch.softmax(adapted_logits(lm, adapter, ids)[-1].double(), -1)
    ref_loss = None
    if reference:
        ex = tokenize_example(lm, Example(0, prompt, reference), kind)
        if kind == "text":  # the reference continues the probe: mask the probe's own tokens
            ex = type(ex)(0, tuple(ids) + tuple(lm.encode(reference)), len(ids))
        ref_loss = dataset_loss(lm, adapter, [ex])
    out = adapted_greedy(lm, adapter, ids, new_tokens) if new_tokens > 0 else []
    return ProbeOutput(lm.decode(out, skip_special_tokens=True), lm.token_text(top), float(probs[top]), ref_loss)


def loss_table(run: DatasetRun) -> list[dict]:
    """The live curves as rows ``{"step", "training loss", "validation loss"}`` (None where a curve has no point)."""
    val = dict(run.val_points)
    steps = sorted(set(range(1, len(run.train_losses) + 1)) | set(val))
    losses = list(run.train_losses)
    return [{"step": s, "training loss": losses[s - 1] if 0 < s <= len(losses) else None,
             "validation loss": val.get(s)} for s in steps]


# ------------------------------------------------------------------------------------------------ PEFT export
def peft_state_dict(adapter: LoraAdapter) -> dict[str, torch.Tensor]:
    """The adapter under PEFT's own key names (``base_model.model.<module>.lora_A.weight`` ``[r, in]`` and
    ``lora_B.weight`` ``[out, r]``), contiguous float32 copies."""
    out = {}
    for name in adapter.names:
        module = name.removesuffix(".weight")
        out[f"base_model.model.{module}.lora_A.weight"] = adapter.a[name].detach().float().contiguous().clone()
        out[f"base_model.model.{module}.lora_B.weight"] = adapter.b[name].detach().float().contiguous().clone()
    return out


def adapter_layer_ids(adapter: LoraAdapter) -> list[int]:
    """The decoder layers the adapter changes (from its parameter names)."""
    return sorted(int(n.split(".")[2]) for n in adapter.names)


def peft_config(lm: LanguageModel, adapter: LoraAdapter) -> dict:
    """PEFT's ``adapter_config.json`` for the adapter.

    ``lora_alpha = r`` makes PEFT's scale ``lora_alpha / r`` equal 1, so PEFT adds exactly the ``ΔW = B @ A`` the app
    trained.
    """
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": getattr(lm.spec, "hub_id", "") or "",
        "r": adapter.rank,
        "lora_alpha": adapter.rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": ["down_proj"],
        "layers_to_transform": adapter_layer_ids(adapter),
        "layers_pattern": "layers",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }


def peft_files(lm: LanguageModel, adapter: LoraAdapter) -> dict[str, bytes]:
    """``adapter_config.json`` and ``adapter_model.safetensors`` as bytes (what ``PeftModel.from_pretrained`` reads)."""
    import json

    from safetensors.torch import save

    return {
        "adapter_config.json": json.dumps(peft_config(lm, adapter), indent=2).encode(),
        "adapter_model.safetensors": save(peft_state_dict(adapter), metadata={"format": "pt"}),
    }


def peft_zip(lm: LanguageModel, adapter: LoraAdapter, folder: str = "llm-explainer-adapter") -> bytes:
    """The two PEFT files in a zip, inside ``folder/``."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in peft_files(lm, adapter).items():
            z.writestr(f"{folder}/{name}", data)
    return buf.getvalue()


@dataclass(frozen=True)
class RunSummary:
    """The numbers the page prints about a finished run.

    Attributes:
        first_loss / last_loss: Training (mini-batch) loss at the first and last step.
        val_before / val_after: Validation loss before training and at the end (None without validation rows).
        share: Trained weights as a fraction of the whole model's parameters.
    """

    first_loss: float
    last_loss: float
    val_before: float | None
    val_after: float | None
    share: float

    @property
    def train_change(self) -> float:
        return self.last_loss - self.first_loss

    @property
    def val_change(self) -> float | None:
        return None if self.val_before is None else self.val_after - self.val_before


def run_summary(lm: LanguageModel, run: DatasetRun) -> RunSummary:
    """Summarise a finished (or stopped) run that took at least one step."""
    v = run.val_points
    return RunSummary(run.train_losses[0], run.train_losses[-1], v[0][1] if v else None, v[-1][1] if v else None,
                      run.adapter.num_params / lm.info.parameters)
