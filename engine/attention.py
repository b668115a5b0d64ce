"""Self-attention in the real model: per-head summaries, one head's arithmetic by hand, and generated tokens.

Everything here reads the model's own tensors. The step-by-step computation in :func:`head_arithmetic` re-does one
head of one layer from the weights (RMSNorm → q/k/v projections → rotary positions → Q·Kᵀ/√d → causal mask →
softmax → weighted sum of values) and reports how far its weights are from the ones the model returned, so a page can
show numbers that provably equal what the model computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.lm import LanguageModel

#: Metrics for the layers × heads overview grid: key → (label, explanation).
HEAD_METRICS: dict[str, tuple[str, str]] = {
    "first": (
        "Weight on the first token",
        "Average attention each position puts on token 0 (the 'attention sink'). Near 1: the head mostly parks its "
        "attention there, i.e. it is idle for this text.",
    ),
    "previous": (
        "Weight on the previous token",
        "Average attention on the token just before. High: a 'previous-token head', a building block of copying.",
    ),
    "self": (
        "Weight on itself",
        "Average attention a position puts on its own token.",
    ),
    "entropy": (
        "Spread (entropy, bits)",
        "How spread out the attention is, averaged over positions. 0 bits: all weight on one token; high: spread "
        "over many tokens.",
    ),
}


#: Most tokens the attention page reads (attentions grow with tokens²: 30 layers × 9 heads × 128² floats ≈ 18 MB).
ATTN_MAX_TOKENS = 128
#: Why, in the input guard's message.
ATTN_WHY = " (attention grows with the square of the length)"
#: Positions the logit lens reads (each costs 31 products with the 49,152-row output layer).
LENS_POSITIONS = 12
#: Most tokens generated for the "attention of generated tokens" view.
MAX_GEN_TOKENS = 12

@dataclass
class AttentionRun:
    """One forward pass with attentions and hidden states, plus readable tokens.

    Attributes:
        ids: ``[T]`` token ids.
        tokens: Readable text of each token (no byte-level markers).
        attentions: ``[L, H, T, T]`` weights; row ``i`` is what query position ``i`` attends to (rows sum to 1).
        hidden_states: ``[L+1, T, D]`` residual stream (entry 0 = embeddings; the last is after the final norm).
        logits: ``[T, V]`` next-token scores.
        head_outputs: ``[L, T, H*d]`` what each layer fed to its output projection (every head's weighted sum of
            values, concatenated), recorded by a hook: the reference for :func:`head_arithmetic`.
    """

    ids: list[int]
    tokens: list[str]
    attentions: torch.Tensor
    hidden_states: torch.Tensor
    logits: torch.Tensor
    head_outputs: torch.Tensor


def run_attention(lm: LanguageModel, ids: Sequence[int]) -> AttentionRun:
    """Run the model once over ``ids`` and keep attentions, hidden states and every head's output.

    Args:
        lm: The model (loaded with eager attention so weights are returned).
        ids: Token ids (non-empty).
    """
    layers = lm.model.model.layers
    captured: list[torch.Tensor | None] = [None] * len(layers)

    def make_hook(i: int):
        def hook(_module, args):
            captured[i] = args[0].detach()[0].float().clone()  # [T, H*d]

        return hook

    # Hooks on the shared model would also fire for other sessions' forwards: hold the model exclusively.
    with lm.exclusive():
        handles = [layer.self_attn.o_proj.register_forward_pre_hook(make_hook(i)) for i, layer in enumerate(layers)]
        try:
            res = lm.forward(ids, attentions=True, hidden_states=True)
        finally:
            for h in handles:
                h.remove()
    return AttentionRun(
        ids=list(res.ids),
        tokens=lm.token_texts(res.ids),
        attentions=res.attentions.float(),  # [L, H, T, T]
        hidden_states=res.hidden_states.float(),  # [L+1, T, D]
        logits=res.logits,  # [T, V]
        head_outputs=torch.stack(captured),  # [L, T, H*d]
    )


def entropy_bits_rows(weights: torch.Tensor) -> torch.Tensor:
    """Entropy in bits of each attention row (last dim); zero weights (masked keys) contribute nothing."""
    w = weights.double()
    plogp = torch.where(w > 0, w * torch.log2(w.clamp_min(1e-300)), torch.zeros_like(w))
    return (-plogp.sum(-1)).float()


def head_metric(attentions: torch.Tensor, metric: str) -> torch.Tensor:
    """Summarise every head with one number for the overview grid.

    Args:
        attentions: ``[L, H, T, T]`` weights.
        metric: A key of :data:`HEAD_METRICS`.

    Returns:
        ``[L, H]`` averages over query positions. Position 0 is left out of the "first" and "previous" averages
        (it can only attend to itself, so it would say nothing about the head); with a 1-token text they are 0/1.
    """
    L, H, T, _ = attentions.shape
    a = attentions.double()
    if metric == "first":
        rows = a[:, :, 1:, 0] if T > 1 else a[:, :, :, 0]  # [L, H, T-1]
        return rows.mean(-1).float()
    if metric == "previous":
        if T == 1:
            return torch.zeros(L, H)
        idx = torch.arange(1, T)
        return a[:, :, idx, idx - 1].mean(-1).float()  # diagonal just below the main one
    if metric == "self":
        return torch.diagonal(a, dim1=-2, dim2=-1).mean(-1).float()  # [L, H]
    if metric == "entropy":
        return entropy_bits_rows(a).mean(-1).float()  # [L, H]
    raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(HEAD_METRICS)}")


def token_attention(attentions: torch.Tensor, position: int, layer: int | None = None) -> torch.Tensor:
    """What one query position attends to, per head.

    Args:
        attentions: ``[L, H, T, T]`` weights.
        position: Query position (0-based).
        layer: One layer, or ``None`` to average over all layers.

    Returns:
        ``[H, position+1]`` weights over keys ``0..position`` (later keys are masked, always 0).
    """
    rows = attentions[:, :, position, : position + 1]  # [L, H, position+1]
    return rows.mean(0) if layer is None else rows[layer]


def sink_share(attentions: torch.Tensor) -> float:
    """Average weight every head, layer and position (after the first) puts on token 0."""
    return float(head_metric(attentions, "first").mean())


def masked_mass(attentions: torch.Tensor) -> float:
    """Total weight above the diagonal (on future tokens) over all layers and heads: 0 for a causal model."""
    T = attentions.shape[-1]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    return float(attentions[..., future].abs().sum())


# ------------------------------------------------------------------------------------------- one head by hand
@dataclass
class HeadArithmetic:
    """One head of one layer recomputed from the weights, every intermediate kept.

    Attributes:
        layer: Layer index (0-based).
        head: Query head index.
        kv_head: The key/value head it shares (grouped-query attention).
        group: Query heads that share that key/value head.
        tokens: Readable tokens, ``T`` of them.
        x_norm: ``[T, D]`` the layer's input after its RMSNorm (what the projections see).
        q_raw: ``[T, d]`` queries before rotary positions. ``q``: ``[T, d]`` after.
        k_raw: ``[T, d]`` keys before rotary positions. ``k``: ``[T, d]`` after.
        v: ``[T, d]`` values.
        scores: ``[T, T]`` q·kᵀ (raw dot products).
        scaled: ``[T, T]`` scores / √d.
        masked: ``[T, T]`` scaled scores with future keys set to −inf (the causal mask).
        weights: ``[T, T]`` softmax of each masked row.
        output: ``[T, d]`` weights @ v, the head's output before the output projection.
        model_weights: ``[T, T]`` the attention weights the model itself returned for this head.
        model_output: ``[T, d]`` the head's slice of the input the model fed to its output projection.
        max_weight_diff: Largest |weights − model_weights|.
        max_output_diff: Largest |output − model_output|.
    """

    layer: int
    head: int
    kv_head: int
    group: list[int]
    tokens: list[str]
    head_dim: int
    x_norm: torch.Tensor
    q_raw: torch.Tensor
    k_raw: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scores: torch.Tensor
    scaled: torch.Tensor
    masked: torch.Tensor
    weights: torch.Tensor
    output: torch.Tensor
    model_weights: torch.Tensor
    model_output: torch.Tensor
    max_weight_diff: float
    max_output_diff: float


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Llama's rotary helper: (x1, x2) → (−x2, x1) on the two halves of the last dim."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@torch.inference_mode()
def head_arithmetic(lm: LanguageModel, run: AttentionRun, layer: int, head: int, n_tokens: int | None = None):
    """Recompute one attention head by hand from the model's weights and check it against the model.

    No forward pass: the layer's input comes from ``run.hidden_states`` and the model's own weights and head output
    from ``run``. Because attention is causal, the first ``n_tokens`` positions of a longer text are computed exactly
    as if the text stopped there, so a prefix can be shown and still matches the model.

    Args:
        lm: A llama-architecture model (the default one or the tiny test model).
        run: A :func:`run_attention` result of the same model.
        layer: Layer index, 0-based.
        head: Query head index, 0-based.
        n_tokens: Use only the first ``n_tokens`` positions (default: all).

    Returns:
        A :class:`HeadArithmetic`.

    Raises:
        ValueError: If ``layer`` or ``head`` is out of range.
    """
    info = lm.info
    if not 0 <= layer < info.layers or not 0 <= head < info.heads:
        raise ValueError(f"layer must be 0..{info.layers - 1} and head 0..{info.heads - 1}")
    T = len(run.ids) if n_tokens is None else max(1, min(int(n_tokens), len(run.ids)))
    block = lm.model.model.layers[layer]
    attn = block.self_attn
    d = info.head_dim
    group_size = info.heads // info.kv_heads
    kv_head = head // group_size  # repeat_kv: query heads g*s .. g*s+s-1 read key/value head g

    x = run.hidden_states[layer, :T]  # [T, D] the residual stream entering this layer
    x_norm = block.input_layernorm(x)  # [T, D] RMSNorm with the layer's learned scale
    sl_q = slice(head * d, (head + 1) * d)
    sl_kv = slice(kv_head * d, (kv_head + 1) * d)
    q_raw = attn.q_proj(x_norm)[:, sl_q]  # [T, d]
    k_raw = attn.k_proj(x_norm)[:, sl_kv]  # [T, d]
    v = attn.v_proj(x_norm)[:, sl_kv]  # [T, d]

    # Rotary position embedding: rotate each (i, i+d/2) pair of dims by an angle that grows with the position, so
    # q·k depends on how far apart two tokens are. cos/sin come from the model's own rotary module: [1, T, d].
    pos = torch.arange(T).unsqueeze(0)
    cos, sin = lm.model.model.rotary_emb(x.unsqueeze(0), pos)
    cos, sin = cos[0], sin[0]  # [T, d]
    q = q_raw * cos + _rotate_half(q_raw) * sin  # [T, d]
    k = k_raw * cos + _rotate_half(k_raw) * sin  # [T, d]

    scores = q @ k.T  # [T, T] row i = query i against every key j
    scaled = scores / math.sqrt(d)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True where key j > query i
    masked = scaled.masked_fill(future, float("-inf"))
    weights = torch.softmax(masked, dim=-1)  # [T, T] rows sum to 1, zeros above the diagonal
    output = weights @ v  # [T, d]

    model_weights = run.attentions[layer, head, :T, :T]  # [T, T]
    model_output = run.head_outputs[layer, :T, sl_q]  # [T, d]
    return HeadArithmetic(
        layer=layer,
        head=head,
        kv_head=kv_head,
        group=list(range(kv_head * group_size, (kv_head + 1) * group_size)),
        tokens=run.tokens[:T],
        head_dim=d,
        x_norm=x_norm,
        q_raw=q_raw,
        k_raw=k_raw,
        q=q,
        k=k,
        v=v,
        scores=scores,
        scaled=scaled,
        masked=masked,
        weights=weights,
        output=output,
        model_weights=model_weights,
        model_output=model_output,
        max_weight_diff=float((weights - model_weights).abs().max()),
        max_output_diff=float((output - model_output).abs().max()),
    )


# ------------------------------------------------------------------------------------------- generated tokens
@dataclass
class GeneratedAttention:
    """Greedy continuation of a prompt and where the model looked while choosing each new token.

    Token ``g`` (the ``g``-th generated one) is chosen from the output at position ``P-1+g``: the last prompt token for
    the first, then each generated token in turn. Row ``g`` of :attr:`attentions` is that position's attention.

    Attributes:
        prompt_len: Number of prompt tokens ``P``.
        ids: ``[P+G]`` prompt and generated ids.
        tokens: Their readable texts.
        probs: Probability each generated token had when it was chosen (``G`` values).
        attentions: ``[L, H, G, P+G-1]`` the rows that chose each generated token; keys are every token before it
            (later keys are 0).
    """

    prompt_len: int
    ids: list[int]
    tokens: list[str]
    probs: list[float]
    attentions: torch.Tensor

    @property
    def generated(self) -> list[str]:
        """Texts of the generated tokens."""
        return self.tokens[self.prompt_len :]

    def over_prompt(self, layer: int | None = None) -> torch.Tensor:
        """``[G, P]`` weight on each prompt token while choosing each generated token, averaged over heads (and over
        layers if ``layer`` is ``None``)."""
        a = self.attentions if layer is None else self.attentions[layer : layer + 1]
        return a[..., : self.prompt_len].mean(dim=(0, 1))

    def prompt_share(self, layer: int | None = None) -> torch.Tensor:
        """``[G]`` total weight on the prompt (the rest went to tokens generated before)."""
        return self.over_prompt(layer).sum(-1)


def generated_attention(lm: LanguageModel, ids: Sequence[int], new_tokens: int) -> GeneratedAttention:
    """Greedily generate up to ``new_tokens`` tokens, then read the attention that chose each one.

    KV-cached generation and one full forward over the prompt and continuation give the same weights (a causal model
    never lets a token see later ones), so one extra forward recovers every step's attention.

    Args:
        lm: The model.
        ids: Prompt ids (non-empty).
        new_tokens: How many tokens to generate (stops early at end-of-sequence).
    """
    ids = [int(i) for i in ids]
    steps = list(lm.generate_stream(ids, max_new_tokens=max(1, int(new_tokens)), temperature=0.0))
    full = ids + [s.token_id for s in steps]
    P, G = len(ids), len(steps)
    if G == 0:  # no room left in the context window
        L, H = lm.info.layers, lm.info.heads
        return GeneratedAttention(P, ids, lm.token_texts(ids), [], torch.zeros(L, H, 0, P))
    res = lm.forward(full[:-1], attentions=True)  # the last token chose nothing yet
    # p(chosen token) from the full softmax (greedy steps report a one-hot distribution).
    logp = torch.log_softmax(res.logits[P - 1 : P - 1 + G].double(), dim=-1)  # [G, V]
    chosen = torch.tensor(full[P:])[:, None]
    return GeneratedAttention(
        prompt_len=P,
        ids=full,
        tokens=lm.token_texts(full),
        probs=[float(x) for x in logp.gather(-1, chosen)[:, 0].exp()],
        attentions=res.attentions[:, :, P - 1 : P - 1 + G, :].float(),  # [L, H, G, P+G-1]
    )
