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
from engine.text import token_label

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
        attn_norms: ``[L, T]`` length (L2 norm) of what each layer's attention added to each position's vector.
        mlp_norms: ``[L, T]`` length of what each layer's MLP added.
        final_residual: ``[T, D]`` the residual stream after the last layer, before the final RMSNorm (the last entry
            of ``hidden_states`` is already normed).
        last_attn: ``[L, D]`` what each layer's attention added to the last position's vector.
        last_mlp: ``[L, D]`` what each layer's MLP added to the last position's vector.
        mlp_width: Width of the MLP's hidden layer (each token's D numbers are expanded to this many, then back).
    """

    ids: list[int]
    tokens: list[str]
    attentions: torch.Tensor
    hidden_states: torch.Tensor
    logits: torch.Tensor
    head_outputs: torch.Tensor
    attn_norms: torch.Tensor
    mlp_norms: torch.Tensor
    final_residual: torch.Tensor
    last_attn: torch.Tensor
    last_mlp: torch.Tensor
    mlp_width: int


def run_attention(lm: LanguageModel, ids: Sequence[int]) -> AttentionRun:
    """Run the model once over ``ids`` and keep attentions, hidden states, every head's output and what attention
    and the MLP of each layer added to the residual stream.

    Args:
        lm: The model (loaded with eager attention so weights are returned).
        ids: Token ids (non-empty).
    """
    layers = lm.model.model.layers
    n = len(layers)
    heads_in: list[torch.Tensor | None] = [None] * n  # [T, H*d] input of each output projection
    attn_out: list[torch.Tensor | None] = [None] * n  # [T, D] attention's update to the residual stream
    mlp_out: list[torch.Tensor | None] = [None] * n  # [T, D] the MLP's update
    final: list[torch.Tensor | None] = [None]  # [T, D] residual stream entering the final norm

    def keep(store: list, i: int, pre: bool):
        def hook(_module, args, output=None):
            store[i] = (args[0] if pre else output).detach()[0].float().clone()

        return hook

    # Hooks on the shared model would also fire for other sessions' forwards: hold the model exclusively.
    with lm.exclusive():
        handles = []
        for i, layer in enumerate(layers):
            handles.append(layer.self_attn.o_proj.register_forward_pre_hook(keep(heads_in, i, pre=True)))
            handles.append(layer.self_attn.o_proj.register_forward_hook(keep(attn_out, i, pre=False)))
            handles.append(layer.mlp.register_forward_hook(keep(mlp_out, i, pre=False)))
        handles.append(lm.model.model.norm.register_forward_pre_hook(keep(final, 0, pre=True)))
        try:
            res = lm.forward(ids, attentions=True, hidden_states=True)
        finally:
            for h in handles:
                h.remove()
    attn_updates = torch.stack(attn_out)  # [L, T, D]
    mlp_updates = torch.stack(mlp_out)  # [L, T, D]
    return AttentionRun(
        ids=list(res.ids),
        tokens=lm.token_texts(res.ids),
        attentions=res.attentions.float(),  # [L, H, T, T]
        hidden_states=res.hidden_states.float(),  # [L+1, T, D]
        logits=res.logits,  # [T, V]
        head_outputs=torch.stack(heads_in),  # [L, T, H*d]
        attn_norms=attn_updates.norm(dim=-1),  # [L, T]
        mlp_norms=mlp_updates.norm(dim=-1),  # [L, T]
        final_residual=final[0],  # [T, D]
        last_attn=attn_updates[:, -1].clone(),  # [L, D]
        last_mlp=mlp_updates[:, -1].clone(),  # [L, D]
        mlp_width=int(layers[0].mlp.up_proj.out_features),
    )


def entropy_bits_rows(weights: torch.Tensor) -> torch.Tensor:
    """Entropy in bits of each attention row (last dim); zero weights (masked keys) contribute nothing."""
    w = weights.double()
    plogp = torch.where(w > 0, w * torch.log2(w.clamp_min(1e-300)), torch.zeros_like(w))
    return (-plogp.sum(-1)).float()


def previous_token_weight(attentions: torch.Tensor, start: int = 1) -> torch.Tensor:
    """Mean weight each query position from ``start`` on puts on the token just before it.

    Args:
        attentions: ``[..., T, T]`` weights (rows = queries), e.g. one head's ``[T, T]`` or all heads' ``[L, H, T, T]``.
        start: First query position counted (≥ 1). The challenges use 2: the token before position 1 is the first
            token, where idle heads park their weight (the attention sink).

    Returns:
        ``[...]`` float32 means (0 when no position is left).
    """
    T = attentions.shape[-1]
    if T <= start:
        return torch.zeros(attentions.shape[:-2])
    idx = torch.arange(start, T)
    return attentions.double()[..., idx, idx - 1].mean(-1).float()  # the diagonal just below the main one


def head_metric(attentions: torch.Tensor, metric: str) -> torch.Tensor:
    """Summarise every head with one number for the overview grid.

    Args:
        attentions: ``[L, H, T, T]`` weights.
        metric: A key of :data:`HEAD_METRICS`.

    Returns:
        ``[L, H]`` averages over query positions. Position 0 is left out of the "first" and "previous" averages
        (it can only attend to itself, so it would say nothing about the head); with a 1-token text they are 0/1.
    """
    if metric == "previous":
        return previous_token_weight(attentions, start=1)  # [L, H]; it makes its own float64 view
    T = attentions.shape[-1]
    a = attentions.double()
    if metric == "first":
        rows = a[:, :, 1:, 0] if T > 1 else a[:, :, :, 0]  # [L, H, T-1]
        return rows.mean(-1).float()
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


# ------------------------------------------------------------------------------------------- views for the page
@dataclass
class TokenView:
    """What one query position reads: one head, or an average over heads and/or layers.

    Attributes:
        position: The query position.
        weights: ``[position+1]`` weights over keys ``0..position`` (they sum to 1).
        top: The key position with the largest weight.
        top_weight: That weight.
        sink_on_top: True when the largest weight goes to the first token although the query can see others.
    """

    position: int
    weights: torch.Tensor
    top: int
    top_weight: float
    sink_on_top: bool


def token_view(attentions: torch.Tensor, position: int, layer: int | None = None, head: int | None = None) -> TokenView:
    """What ``position`` attends to in one layer (or averaged over layers) and one head (or averaged over heads).

    Args:
        attentions: ``[L, H, T, T]`` weights.
        position: Query position (0-based).
        layer: One layer, or ``None`` for the average over layers.
        head: One head, or ``None`` for the average over heads.
    """
    per_head = token_attention(attentions, position, layer)  # [H, position+1]
    weights = per_head.mean(0) if head is None else per_head[head]  # [position+1]
    top = int(weights.argmax())
    return TokenView(position, weights, top, float(weights[top]), top == 0 and position > 0)


@dataclass
class HeadView:
    """One head's ``[T, T]`` attention matrix and where the last token looks hardest.

    Attributes:
        layer: Layer index.
        head: Head index.
        weights: ``[T, T]`` rows = queries, columns = keys.
        last_top: Key position the last token weighs most.
        last_top_weight: That weight.
    """

    layer: int
    head: int
    weights: torch.Tensor
    last_top: int
    last_top_weight: float


def head_view(attentions: torch.Tensor, layer: int, head: int) -> HeadView:
    """One head's matrix (a slice of ``attentions`` ``[L, H, T, T]``) and the last row's strongest key."""
    weights = attentions[layer, head]  # [T, T]
    last = weights[-1]  # [T]
    top = int(last.argmax())
    return HeadView(layer, head, weights, top, float(last[top]))


@dataclass
class HeadOverview:
    """Every head summarised by one metric, and the head where it is highest.

    Attributes:
        metric: A key of :data:`HEAD_METRICS`.
        grid: ``[L, H]`` the metric per layer and head.
        best_layer: Layer of the highest value.
        best_head: Head of the highest value.
        best_value: The highest value.
    """

    metric: str
    grid: torch.Tensor
    best_layer: int
    best_head: int
    best_value: float

    @property
    def label(self) -> str:
        """The metric's readable name."""
        return HEAD_METRICS[self.metric][0]

    def records(self) -> list[dict]:
        """One row per head (layer, head, value rounded to 5 decimals), for a table or a CSV file."""
        L, H = self.grid.shape
        return [{"layer": li, "head": h, self.label: round(float(self.grid[li, h]), 5)} for li in range(L)
                for h in range(H)]


def head_overview(attentions: torch.Tensor, metric: str) -> HeadOverview:
    """:func:`head_metric` for every head plus its maximum (``attentions``: ``[L, H, T, T]``)."""
    grid = head_metric(attentions, metric)  # [L, H]
    flat = int(grid.flatten().argmax())
    H = grid.shape[1]
    return HeadOverview(metric, grid, flat // H, flat % H, float(grid.flatten()[flat]))


@dataclass
class AttentionFacts:
    """Whole-model facts about one prompt's attention.

    Attributes:
        sink: Average weight on the first token (every layer, head and position after the first).
        future: Total weight on future tokens (0 for a causal model).
        kv_groups: For each key/value head, the query heads that share it (grouped-query attention).
        average: ``[T, T]`` attention averaged over every layer and head.
    """

    sink: float
    future: float
    kv_groups: list[list[int]]
    average: torch.Tensor

    @property
    def kv_saving(self) -> int:
        """How many times smaller the KV cache is than with one key/value head per query head."""
        return len(self.kv_groups[0]) if self.kv_groups else 1


def attention_facts(attentions: torch.Tensor, kv_heads: int) -> AttentionFacts:
    """Sink share, future mass, key/value groups and the average pattern of ``attentions`` ``[L, H, T, T]``.

    Args:
        attentions: The weights of one forward pass.
        kv_heads: The model's number of key/value heads (it must divide the number of query heads).
    """
    H = attentions.shape[1]
    size = H // kv_heads
    return AttentionFacts(
        sink=sink_share(attentions),
        future=masked_mass(attentions),
        kv_groups=[list(range(g * size, (g + 1) * size)) for g in range(kv_heads)],
        average=attentions.mean(dim=(0, 1)),  # [T, T] over layers and heads
    )


@dataclass
class BlockFlow:
    """How one position's vector changes through the blocks: the residual stream and what each part adds.

    A llama block does ``x = x + attention(RMSNorm(x))`` then ``x = x + MLP(RMSNorm(x))``: attention and the MLP
    never replace the vector, they add to it. The lengths here are L2 norms of those vectors.

    Attributes:
        position: The position read.
        residual: ``[L+1]`` length of the vector entering each layer; the last entry is after the last layer, before
            the final RMSNorm.
        rms: ``[L+1]`` the same vectors' root-mean-square (what RMSNorm divides by).
        attn: ``[L]`` length of what each layer's attention added.
        mlp: ``[L]`` length of what each layer's MLP added.
        mlp_larger: In how many layers the MLP changed the vector more than attention did.
        biggest_attn: Layer where attention added the most.
        biggest_mlp: Layer where the MLP added the most.
        mlp_width: Width of the MLP's hidden layer.
    """

    position: int
    residual: torch.Tensor
    rms: torch.Tensor
    attn: torch.Tensor
    mlp: torch.Tensor
    mlp_larger: int
    biggest_attn: int
    biggest_mlp: int
    mlp_width: int

    def records(self) -> list[dict]:
        """One row per layer: the lengths entering it and added by its two parts (rounded to 4 decimals)."""
        return [
            {"layer": i, "residual stream length entering": round(float(self.residual[i]), 4),
             "added by attention": round(float(self.attn[i]), 4), "added by the MLP": round(float(self.mlp[i]), 4)}
            for i in range(len(self.attn))
        ]


def block_flow(run: AttentionRun, position: int = -1) -> BlockFlow:
    """The residual stream's length per layer at one position, and how much attention and the MLP add to it.

    Args:
        run: A :func:`run_attention` result.
        position: The position to read (default: the last, whose vector becomes the next-token prediction).
    """
    T = len(run.ids)
    pos = position % T
    stream = torch.cat([run.hidden_states[:-1, pos], run.final_residual[pos : pos + 1]])  # [L+1, D] un-normed
    residual = stream.norm(dim=-1)  # [L+1]
    rms = residual / math.sqrt(stream.shape[-1])  # [L+1] RMS = ‖x‖ / √D
    attn, mlp = run.attn_norms[:, pos], run.mlp_norms[:, pos]  # [L] each
    return BlockFlow(
        position=pos,
        residual=residual,
        rms=rms,
        attn=attn,
        mlp=mlp,
        mlp_larger=int((mlp > attn).sum()),
        biggest_attn=int(attn.argmax()),
        biggest_mlp=int(mlp.argmax()),
        mlp_width=run.mlp_width,
    )


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

    @property
    def sqrt_d(self) -> float:
        """√d, what the scores are divided by."""
        return math.sqrt(self.head_dim)


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
    sl_q = slice(head * d, (head + 1) * d)
    sl_kv = slice(kv_head * d, (kv_head + 1) * d)
    pos = torch.arange(T).unsqueeze(0)
    # The shared modules are called directly: hold the model so no other session's hooks or functional-call weight
    # swaps (fine-tuning, DPO) are on them meanwhile.
    with lm.exclusive():
        x_norm = block.input_layernorm(x)  # [T, D] RMSNorm with the layer's learned scale
        q_raw = attn.q_proj(x_norm)[:, sl_q]  # [T, d]
        k_raw = attn.k_proj(x_norm)[:, sl_kv]  # [T, d]
        v = attn.v_proj(x_norm)[:, sl_kv]  # [T, d]
        # Rotary position embedding: rotate each (i, i+d/2) pair of dims by an angle that grows with the position,
        # so q·k depends on how far apart two tokens are. cos/sin come from the model's own rotary module: [1, T, d].
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

    def steps(self, layer: int | None = None) -> list[dict]:
        """One row per generated token: its text, probability, and the weight on the prompt vs on earlier output."""
        share = self.prompt_share(layer)  # [G]
        return [
            {"step": g + 1, "generated token": token_label(t), "probability": round(p, 4),
             "weight on the prompt": round(float(s), 3), "weight on its own earlier output": round(1 - float(s), 3)}
            for g, (t, p, s) in enumerate(zip(self.generated, self.probs, share, strict=True))
        ]


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
