"""A fast, lower-precision decode loop for free-running generation (llama-architecture models).

Why: one new token of SmolLM2-135M reads ~540 MB of float32 weights. This machine streams about 20 GB/s from memory
into a matrix-vector product, so exact float32 generation cannot pass ~37 tokens/s however lean the code. llama.cpp
is fast because it reads 4-bit weights. This module does the same: every linear layer's weights are stored as 4-bit
integers with one scale and offset per group of 32 (like the GGUF's own Q4_1 format) and multiplied in bfloat16 by
PyTorch's int4 CPU kernel. The norms, rotary positions, attention softmax and residual stream stay float32.

What it changes: the numbers are close to the float32 model's but not equal, so a long generated text can take a
different turn after a few tokens (the pages that use it say so). Every probability, attention weight and embedding
the pages *show* comes from the float32 path (the shipped 4-bit values unpacked to float32), never from here.

``quantize=False`` runs the same loop with the float32 weights: the tests use it to check the loop's math against the
library's forward (logits equal within float tolerance).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from typing import Optional

import torch
import torch.nn.functional as F

GROUP = 32  # weights per scale/offset pair, as in GGUF's Q4_1


def int4_kernel_available() -> bool:
    """Whether this PyTorch build has the CPU int4 weight kernel."""
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and hasattr(
        torch.ops.aten, "_convert_weight_to_int4pack_for_cpu"
    )


class Int4Linear:
    """``y = x Wᵀ`` with ``W`` ([N, K] float32) stored as 4-bit groups: ``w = (q - 8)·s + z``, q ∈ 0..15.

    The group's scale is (max − min)/15 and its offset puts q = 0 on the minimum: the Q4_1 recipe.
    """

    #: Rows packed at a time: the float32 and int32 temporaries of one chunk stay a few MB, instead of ~340 MB at
    #: once for the 49,152-row output layer (the server's peak memory). A multiple of 64: the kernel packs rows in
    #: blocks of 64, so only such chunks concatenate to the whole-matrix packing (the tests check it).
    CHUNK_ROWS = 4096

    def __init__(self, weight: torch.Tensor, group: int = GROUP) -> None:
        n, k = weight.shape
        if k % group:
            raise ValueError(f"in-features {k} is not a multiple of the group size {group}")
        packed, scales_zeros = [], []
        for r in range(0, n, self.CHUNK_ROWS):  # rows pack independently: chunks concatenate to the whole
            w = weight[r : r + self.CHUNK_ROWS].detach().float().reshape(-1, k // group, group)  # [n, K/G, G]
            lo, hi = w.amin(-1), w.amax(-1)  # [n, K/G]
            step = ((hi - lo) / 15).clamp_min(1e-12)
            q = torch.round((w - lo[..., None]) / step[..., None]).clamp(0, 15).to(torch.int32).reshape(-1, k)
            packed.append(torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))  # [n, K/2] uint8
            # The kernel's convention is w = (q - 8)·scale + zero, so zero = min + 8·step: [K/G, n, 2] in bfloat16
            scales_zeros.append(torch.stack([step, lo + 8 * step], -1).transpose(0, 1).to(torch.bfloat16))
        self.packed = packed[0] if len(packed) == 1 else torch.cat(packed)  # [N, K/2]
        self.scales_zeros = torch.cat(scales_zeros, 1).contiguous()  # [K/G, N, 2]
        self.group = group
        self.nbytes = self.packed.numel() + self.scales_zeros.numel() * 2
        self.operands = (self.packed, self.scales_zeros)  # what the compiled step reads

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # x: [T, K] float32 → [T, N] float32
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), self.packed, self.group, self.scales_zeros)
        return y.float()


class Float32Linear:
    """The exact counterpart of :class:`Int4Linear` (float32 weights, a copy when fused)."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight.detach()
        self.nbytes = self.weight.numel() * 4
        self.operands = (self.weight, torch.empty(0))  # no scales: the compiled step uses F.linear

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class FastDecoder:
    """Prefill + one-token-at-a-time decoding (batch size 1) with preallocated key/value buffers.

    Every tensor it needs is captured when it is built, so it never reads the model's modules afterwards (a
    fine-tune that temporarily swaps a module's weight in another session cannot affect it) and several sessions
    can decode at once without a lock.

    Args:
        model: A Hugging Face ``LlamaForCausalLM`` in eval mode (read only).
        quantize: 4-bit weights with the bfloat16 kernel (fast) or the float32 weights (exact reference).
        params: The model's weights by name (``named_parameters(remove_duplicate=False)``), taken by the caller
            while no other thread swaps module weights (see :meth:`engine.lm.LanguageModel.fast_decoder`); the slow
            part (packing every matrix to 4 bits) then needs no lock. Defaults to reading the modules now.
    """

    def __init__(self, model, quantize: bool = True, params: dict[str, torch.Tensor] | None = None) -> None:
        if not self.supports(model):
            raise ValueError("FastDecoder supports the plain llama block (SiLU MLP, no biases).")
        if quantize and not int4_kernel_available():
            raise ValueError("This PyTorch build has no int4 CPU kernel.")
        if params is None:
            params = {n: t.detach() for n, t in model.named_parameters(remove_duplicate=False)}
        cfg = model.config
        self.quantized = quantize
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        self.max_len = cfg.max_position_embeddings
        self.scale = 1.0 / math.sqrt(self.head_dim)
        make = Int4Linear if quantize else Float32Linear
        self.layers = []
        for i in range(len(model.model.layers)):
            def w(name: str, i: int = i) -> torch.Tensor:  # [out, in] float32
                return params[f"model.layers.{i}.{name}.weight"]

            # Fused products: q, k and v read the same input, so do gate and up: 4 kernel calls per layer, not 7.
            entry = {
                "qkv": make(torch.cat([w("self_attn.q_proj"), w("self_attn.k_proj"), w("self_attn.v_proj")])),
                "o_proj": make(w("self_attn.o_proj")),
                "gate_up": make(torch.cat([w("mlp.gate_proj"), w("mlp.up_proj")])),
                "down_proj": make(w("mlp.down_proj")),
                "norm_in": w("input_layernorm"),
                "norm_post": w("post_attention_layernorm"),
            }
            self.layers.append(entry)
        # Flat lists for the compiled loop: per layer qkv, o, gate_up, down (packed int4 or float32) and two norms.
        self.embed = params["model.embed_tokens.weight"]  # [V, D], float32 rows are looked up exactly
        self.norm = params["model.norm.weight"]
        self.head = make(params.get("lm_head.weight", self.embed))  # tied models share the embedding matrix
        linears = [e[n] for e in self.layers for n in ("qkv", "o_proj", "gate_up", "down_proj")] + [self.head]
        self._weights = [lin.operands[0] for lin in linears]
        self._scales = [lin.operands[1] for lin in linears]
        self._norms = [e[n] for e in self.layers for n in ("norm_in", "norm_post")] + [self.norm]
        # Rotary tables from the model's own module (its inv_freq and scaling), computed once for every position.
        with torch.inference_mode():
            pos = torch.arange(self.max_len)[None, :]
            cos, sin = model.model.rotary_emb(torch.empty(1, dtype=self.embed.dtype), pos)
        self.cos, self.sin = cos[0], sin[0]  # [max_len, head_dim]
        self.nbytes = sum(lin.nbytes for lin in linears)  # bytes of weights read per token
        self.batcher = StepBatcher(self)

    @staticmethod
    def supports(model) -> bool:
        """Whether ``model`` is a plain llama block this loop reproduces."""
        cfg = getattr(model, "config", None)
        return (
            getattr(cfg, "model_type", None) == "llama"
            and getattr(cfg, "hidden_act", "silu") == "silu"
            and not getattr(cfg, "attention_bias", False)
            and not getattr(cfg, "mlp_bias", False)
        )

    @torch.inference_mode()
    def start(self, ids: list[int], capacity: int) -> tuple[torch.Tensor, dict]:
        """Run the prompt and allocate the key/value buffers.

        Args:
            ids: Prompt token ids (non-empty, within the context window).
            capacity: Prompt length plus the most tokens that will be generated.

        Returns:
            The ``[V]`` logits for the next token and the decoding state to pass to :meth:`step`.
        """
        if not ids:
            raise ValueError("Nothing to continue: the prompt has no tokens.")
        if len(ids) > self.max_len:
            raise ValueError(f"{len(ids)} tokens is more than the context window of {self.max_len}.")
        capacity = min(max(int(capacity), len(ids)), self.max_len)
        shape = (len(self.layers), self.n_kv, capacity, self.head_dim)
        state = {"k": torch.zeros(shape), "v": torch.zeros(shape), "len": 0}
        return self._run(torch.tensor([int(i) for i in ids]), state), state

    def step(self, token: int, state: dict) -> torch.Tensor:
        """Append one token and return the ``[V]`` logits for the one after it.

        Sessions that step at the same moment share one batched pass (:class:`StepBatcher`); the result is the same
        as stepping alone, bit for bit.
        """
        _check_room(state)  # here, in this session's thread: a full buffer must not fail the others' batch
        return self.batcher.step(int(token), state)

    @torch.inference_mode()
    def step_batch(self, tokens: list[int], states: list[dict]) -> torch.Tensor:
        """One new token for each of ``B`` sequences in one pass; returns their ``[B, V]`` logits.

        The linear layers (nearly all of the work: reading the weights) run once on a ``[B, D]`` matrix; attention
        runs per sequence against its own cache. Each row equals the sequence's own :meth:`step` alone.
        """
        for state in states:
            _check_room(state)
        starts = [int(state["len"]) for state in states]
        logits = _decode_batch(
            torch.tensor([int(t) for t in tokens]), self.embed, [st["k"] for st in states],
            [st["v"] for st in states], starts, self.cos, self.sin, self._weights, self._scales, self._norms,
            self.quantized, GROUP, self.n_heads, self.n_kv, self.head_dim, self.eps, self.scale,
        )
        for state, start in zip(states, starts):
            state["len"] = start + 1
        return logits

    def _run(self, ids: torch.Tensor, state: dict) -> torch.Tensor:
        T, start = ids.shape[0], state["len"]
        end = start + T
        # Row i (position start+i) may see cached columns 0..start+i: -inf above that diagonal.
        mask = torch.full((T, end), float("-inf")).triu(start + 1) if T > 1 else None  # [T, end]
        logits = _decode_step(
            ids, self.embed, state["k"], state["v"], start, self.cos[start:end], self.sin[start:end], mask,
            self._weights, self._scales, self._norms, self.quantized, GROUP,
            self.n_heads, self.n_kv, self.head_dim, self.eps, self.scale,
        )
        state["len"] = end
        return logits


def _check_room(state: dict) -> None:
    if state["len"] >= state["k"].shape[2]:
        raise ValueError("The key/value buffers are full.")


def _linear(x: torch.Tensor, w: torch.Tensor, sz: torch.Tensor, quantized: bool, group: int) -> torch.Tensor:
    if quantized:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), w, group, sz).float()
    return F.linear(x, w)


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2  # x: [heads, T, hd]; the library's rotate_half
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _after_attention(
    x: torch.Tensor,
    attn: torch.Tensor,
    w: list[torch.Tensor],
    sz: list[torch.Tensor],
    norm_post: torch.Tensor,
    quantized: bool,
    group: int,
    eps: float,
) -> torch.Tensor:
    """The rest of one layer, shared by the prompt pass and the batched step: the heads' output ``attn`` ([N, H·hd])
    projected into the residual stream ``x`` ([N, D]), then the gated MLP; returns the new ``x``."""
    x = x + _linear(attn, w[1], sz[1], quantized, group)
    gate_up = _linear(_rms(x, norm_post, eps), w[2], sz[2], quantized, group)  # [N, 2·I]
    half = gate_up.shape[-1] // 2
    return x + _linear(F.silu(gate_up[:, :half]) * gate_up[:, half:], w[3], sz[3], quantized, group)


def _decode_step(
    ids: torch.Tensor,
    embed: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    start: int,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: Optional[torch.Tensor],  # noqa: UP045 - TorchScript reads this annotation
    weights: list[torch.Tensor],
    scales: list[torch.Tensor],
    norms: list[torch.Tensor],
    quantized: bool,
    group: int,
    n_heads: int,
    n_kv: int,
    hd: int,
    eps: float,
    scale: float,
) -> torch.Tensor:
    """The new tokens ``ids`` ([T]) through every layer, keys/values written into the caches; returns the ``[V]``
    logits after the last one. ``weights``/``scales``: per layer qkv, o, gate_up, down (the last pair is the output
    layer); ``norms``: per layer input and post-attention norms, then the final norm.

    Compiled with TorchScript below: one call per token from Python, and the interpreter runs the ~500 tensor ops
    without taking Python's lock between them, so busy sessions on other threads cannot stall it op by op.
    """
    x = embed[ids]  # [T, D]
    T = x.shape[0]
    end = start + T
    G = n_heads // n_kv
    for li in range(len(norms) // 2):  # the final norm is the odd one out
        w = weights[4 * li : 4 * li + 4]  # qkv, o, gate_up, down
        sz = scales[4 * li : 4 * li + 4]
        h = _rms(x, norms[2 * li], eps)
        qkv = _linear(h, w[0], sz[0], quantized, group)
        q = qkv[:, : n_heads * hd].reshape(T, n_heads, hd).transpose(0, 1)  # [H, T, hd]
        k = qkv[:, n_heads * hd : (n_heads + n_kv) * hd].reshape(T, n_kv, hd).transpose(0, 1)  # [KV, T, hd]
        v = qkv[:, (n_heads + n_kv) * hd :].reshape(T, n_kv, hd).transpose(0, 1)
        q = _rotate(q, cos, sin)
        k = _rotate(k, cos, sin)
        k_cache[li, :, start:end] = k
        v_cache[li, :, start:end] = v
        keys = k_cache[li, :, :end]  # [KV, end, hd]
        vals = v_cache[li, :, :end]
        # GQA: query heads g·G … g·G+G-1 share key/value head g → one batched product per kv head
        scores = torch.matmul(q.reshape(n_kv, G * T, hd), keys.transpose(1, 2)) * scale  # [KV, G*T, end]
        if mask is not None:
            scores = (scores.view(n_kv, G, T, end) + mask).view(n_kv, G * T, end)
        out = torch.matmul(torch.softmax(scores, dim=-1), vals)  # [KV, G*T, hd]
        out = out.view(n_heads, T, hd).transpose(0, 1).reshape(T, n_heads * hd)  # [T, H*hd]
        x = _after_attention(x, out, w, sz, norms[2 * li + 1], quantized, group, eps)
    last = _rms(x[-1:], norms[-1], eps)  # [1, D]: the output layer for the last position only
    return _linear(last, weights[-1], scales[-1], quantized, group)[0]  # [V]


try:
    _decode_step = torch.jit.script(_decode_step)
except Exception:  # noqa: BLE001 - TorchScript is an optimisation; the Python function computes the same thing
    pass


def _decode_batch(
    ids: torch.Tensor,
    embed: torch.Tensor,
    k_caches: list[torch.Tensor],
    v_caches: list[torch.Tensor],
    starts: list[int],
    cos_all: torch.Tensor,
    sin_all: torch.Tensor,
    weights: list[torch.Tensor],
    scales: list[torch.Tensor],
    norms: list[torch.Tensor],
    quantized: bool,
    group: int,
    n_heads: int,
    n_kv: int,
    hd: int,
    eps: float,
    scale: float,
) -> torch.Tensor:
    """One new token for each of B sequences (``ids``: [B]; sequence b's token sits at position ``starts[b]`` and its
    keys/values go into ``k_caches[b]``/``v_caches[b]``, each [L, KV, capacity, hd]); returns the ``[B, V]`` logits.

    The same arithmetic as :func:`_decode_step` with T = 1, row by row: the int4 kernel computes each row of a
    [B, K] input exactly as it computes that row alone, and attention runs per sequence.
    """
    x = embed[ids]  # [B, D]
    B = x.shape[0]
    G = n_heads // n_kv
    pos = torch.tensor(starts, dtype=torch.long)
    cos = cos_all[pos][:, None, :]  # [B, 1, hd]: broadcast over heads
    sin = sin_all[pos][:, None, :]
    for li in range(len(norms) // 2):
        w = weights[4 * li : 4 * li + 4]  # qkv, o, gate_up, down
        sz = scales[4 * li : 4 * li + 4]
        h = _rms(x, norms[2 * li], eps)
        qkv = _linear(h, w[0], sz[0], quantized, group)  # [B, (H + 2·KV)·hd]
        q = _rotate(qkv[:, : n_heads * hd].reshape(B, n_heads, hd), cos, sin)  # [B, H, hd]
        k = _rotate(qkv[:, n_heads * hd : (n_heads + n_kv) * hd].reshape(B, n_kv, hd), cos, sin)  # [B, KV, hd]
        v = qkv[:, (n_heads + n_kv) * hd :].reshape(B, n_kv, hd)
        outs: list[torch.Tensor] = []
        for b in range(B):  # attention: each sequence against its own cache, [KV, G, hd] x [KV, hd, s+1]
            s = starts[b]
            k_caches[b][li, :, s] = k[b]
            v_caches[b][li, :, s] = v[b]
            keys = k_caches[b][li, :, : s + 1]  # [KV, s+1, hd]
            vals = v_caches[b][li, :, : s + 1]
            scores = torch.matmul(q[b].reshape(n_kv, G, hd), keys.transpose(1, 2)) * scale  # [KV, G, s+1]
            outs.append(torch.matmul(torch.softmax(scores, dim=-1), vals).reshape(n_heads * hd))  # [H*hd]
        x = _after_attention(x, torch.stack(outs), w, sz, norms[2 * li + 1], quantized, group, eps)
    return _linear(_rms(x, norms[-1], eps), weights[-1], scales[-1], quantized, group)  # [B, V]


try:
    _decode_batch = torch.jit.script(_decode_batch)
except Exception:  # noqa: BLE001 - as for _decode_step
    pass


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _shared_threads() -> int:
    """Intra-op threads of a generation pass while pages or jobs are busy: all cores but one (at least one), so the
    core left serves everyone's page runs, which need Python's lock and so about one core anyway (measured on 2
    cores, 10 of 60 sessions generating while 50 move a slider: the slider moves' p95 was 1.5-1.8 s with every
    generation decoding on its own, 0.9 s with one pass at a time on one core). ``LLMX_DECODE_THREADS`` overrides."""
    env = os.environ.get("LLMX_DECODE_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, _cores() - 1)


#: Streamlit's name for the thread of a page's script run (one per run; it ends with the run).
SCRIPT_THREAD_NAME = "ScriptRunner.scriptThread"
#: Threads named so are the app's own work while they live: model loads, training jobs, the fast decoder's packing.
APP_THREAD_PREFIX = "llmx-"
DECODE_THREAD_NAME = "llmx-decode"
#: Other processes using more cores than this (e.g. a browser drawing the page on the same machine) count as busy.
OTHER_PROCESSES_BUSY = 0.3


class _Task:
    __slots__ = ("fn", "threads", "result", "error", "done")

    def __init__(self, fn, threads: int) -> None:
        self.fn, self.threads, self.result, self.error, self.done = fn, threads, None, None, False


class DecodeThread:
    """Where and on how many cores each 4-bit prompt or decode pass runs, whoever asks: one pass at a time.

    Why a thread of its own. Each thread that runs torch on two or more intra-op threads keeps its own OpenMP pool,
    and once libgomp manages more threads than there are cores it stops spin-waiting between parallel regions: an
    idle pool in another thread is enough. So pages' script threads decode on one intra-op thread (24.5 tokens/s on
    the 2-core AVX2 machine, against 35 on two). Passes handed to this one thread share one pool, so they can take
    every core while nothing else is busy: no other page run, no job, no other process such as a browser drawing
    the page on the same machine (:class:`engine.threads.OtherProcessesLoad`). Otherwise a pass takes all cores but
    one (:func:`_shared_threads`), and on a 2-core machine it runs in the caller's own thread on one core, with no
    hand-over (measured: a hand-over under load cost ~10 % of Generate's speed in Chromium). The choice is made per
    pass; the outputs do not depend on it (the tests compare them).

    The thread lives while there is work and ends after ``linger`` idle seconds: its pool goes with it, so it never
    slows a training job's own parallel ops while no one generates. Not a daemon: a daemon thread still inside a
    torch kernel while the interpreter shuts down aborts the process.
    """

    def __init__(self, linger: float = 0.5) -> None:
        self.linger = linger
        self.passes_by_threads: dict[int, int] = {}  # intra-op threads -> passes run with them (tests read it)
        self._cv = threading.Condition()
        self._pass_lock = threading.Lock()  # one pass at a time, here or in a caller's thread
        self._tasks: list[_Task] = []
        self._thread: threading.Thread | None = None
        self._waiting: dict[int, int] = {}  # thread ident -> nesting depth: callers blocked on generation work

    def run(self, fn):
        """Run the pass ``fn()`` and return its result (its exception is raised here).

        From a thread that runs torch on one intra-op thread (a page's script run), a pass that may use several
        cores is handed to the decode thread; a one-core pass runs where it was asked (a hand-over costs more than
        it gains then). A thread that runs torch on several threads itself (a script's main thread, a training job)
        has an OpenMP pool of its own, which a second one would slow: its passes run there, on at most its own count.
        """
        from engine import threads

        with self.waiting():
            n = self.threads_now()
            own = torch.get_num_threads()
            if n == 1 or own > 1:
                n = min(n, own)
                with self._pass_lock, threads.intra_op_threads(n):
                    self._count(n)
                    return fn()
            task = _Task(fn, n)
            with self._cv:
                self._tasks.append(task)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name=DECODE_THREAD_NAME, daemon=False)
                    self._thread.start()
                self._cv.notify_all()
                while not task.done:
                    self._cv.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def _count(self, n: int) -> None:
        with self._cv:
            self.passes_by_threads[n] = self.passes_by_threads.get(n, 0) + 1

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Mark the calling thread as blocked on generation work (not busy) for the length of the block."""
        ident = threading.get_ident()
        with self._cv:
            self._waiting[ident] = self._waiting.get(ident, 0) + 1
        try:
            yield
        finally:
            with self._cv:
                self._waiting[ident] -= 1
                if not self._waiting[ident]:
                    del self._waiting[ident]

    def others_busy(self) -> bool:
        """Whether any page run or app job is working, other than the callers waiting on this thread."""
        with self._cv:
            waiting = set(self._waiting)
        for t in threading.enumerate():
            if t.name == DECODE_THREAD_NAME or t.ident in waiting:  # the decode thread, or an ending one
                continue
            if t.name == SCRIPT_THREAD_NAME or t.name.startswith(APP_THREAD_PREFIX):
                return True
        return False

    def threads_now(self) -> int:
        """Intra-op threads for the next pass: every core when nothing else is busy (no page run, no job, other
        processes under :data:`OTHER_PROCESSES_BUSY` cores), else :func:`_shared_threads`."""
        from engine.threads import OTHER_PROCESSES

        shared = _shared_threads()
        if self.others_busy() or OTHER_PROCESSES.cores() > OTHER_PROCESSES_BUSY:
            return shared
        return max(shared, _cores())

    def _loop(self) -> None:
        from engine import threads

        while True:
            with self._cv:
                if not self._tasks:
                    self._cv.wait(self.linger)
                    if not self._tasks:  # idle: end, and free this thread's OpenMP pool with it
                        self._thread = None
                        return
                task = self._tasks.pop(0)
            try:
                with self._pass_lock, threads.intra_op_threads(task.threads):
                    self._count(task.threads)
                    task.result = task.fn()
            except BaseException as err:  # noqa: BLE001 - raised in the caller's thread, never here
                task.error = err
            with self._cv:
                task.done = True
                self._cv.notify_all()


#: The one decode thread of the process (see :class:`DecodeThread`).
DECODE = DecodeThread()


class _Request:
    __slots__ = ("token", "state", "logits", "error", "done")

    def __init__(self, token: int, state: dict) -> None:
        self.token, self.state = token, state
        self.logits: torch.Tensor | None = None
        self.error: BaseException | None = None
        self.done = False


class StepBatcher:
    """Continuous batching: the decode steps that sessions ask for at the same moment run as one batched pass.

    A session's step joins a queue. If no pass of this decoder is running, the caller runs one for everything queued
    (up to ``max_batch``) and hands each session its row; otherwise it waits for the running pass to end and then
    either finds its row ready or runs the next pass. Serving systems (vLLM, llama.cpp's server, TGI) batch the same
    way: reading the weights is most of a step's cost and one read serves every row. Each row is computed exactly as
    it would be alone (``tests/test_engine_fastgen.py`` checks bit equality), so a learner's text never depends on
    who else is generating.
    """

    def __init__(self, decoder: FastDecoder, max_batch: int = 16) -> None:
        self.decoder = decoder
        self.max_batch = max_batch
        self.passes = 0  # batched passes run so far (the tests read it)
        self.rows = 0  # steps served by them
        self._cv = threading.Condition()
        self._queue: list[_Request] = []
        self._running = False

    def step(self, token: int, state: dict) -> torch.Tensor:
        """The ``[V]`` logits after appending ``token`` to the sequence of ``state`` (see :meth:`FastDecoder.step`)."""
        with DECODE.waiting():  # a session waiting for its row is not busy (DecodeThread.threads_now)
            return self._step(token, state)

    def _step(self, token: int, state: dict) -> torch.Tensor:
        req = _Request(token, state)
        with self._cv:
            self._queue.append(req)
        while True:
            with self._cv:
                while not req.done and self._running:
                    self._cv.wait()
                if req.done:
                    break
                self._running = True
                batch = self._queue[: self.max_batch]
                del self._queue[: len(batch)]
            self._run(batch)
        if req.error is not None:
            raise req.error
        return req.logits

    def _run(self, batch: list[_Request]) -> None:
        try:
            tokens, states = [r.token for r in batch], [r.state for r in batch]
            logits = DECODE.run(lambda: self.decoder.step_batch(tokens, states))  # [B, V]
            for r, row in zip(batch, logits):
                r.logits = row
        except BaseException as err:  # noqa: BLE001 - every waiting session gets the error, none hangs
            for r in batch:
                r.error = err
        finally:
            with self._cv:
                for r in batch:
                    r.done = True
                self.passes += 1
                self.rows += len(batch)
                self._running = False
                self._cv.notify_all()
