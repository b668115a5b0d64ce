"""Cached attention computations and the figures of the attention page.

One forward pass per (model, text) gives attentions, hidden states and head outputs; every selector on the page
(layer, head, metric, token, bertviz layers, arithmetic head, logit-lens window) re-shapes that cached result and never
runs the model again. Generation is cached per (model, text, number of tokens). Never modify a cached result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from components.charts import ACCENT, MUTED, token_label, unique_labels
from engine.attention import (
    AttentionRun,
    GeneratedAttention,
    HeadArithmetic,
    generated_attention,
    head_arithmetic,
    run_attention,
)
from engine.logit_lens import LensResult, logit_lens

#: Most tokens this page reads (attentions grow with tokens²: 30 layers × 9 heads × 128² floats ≈ 18 MB per text).
ATTN_MAX_TOKENS = 128
#: Positions the logit lens reads (each costs 31 products with the 49,152-row output layer).
LENS_POSITIONS = 12
#: Most tokens generated for the "attention of generated tokens" view.
MAX_GEN_TOKENS = 12

# Sequential scales readable on light and dark backgrounds (the page background shows only around the plot).
WEIGHT_SCALE = "Blues"
LENS_SCALE = "YlGnBu"


def _load(model_key: str):
    from components.model import load_model

    return load_model(model_key)


def _ids_for(lm, text: str) -> list[int]:
    if not text.strip():
        raise ValueError("The prompt is empty.")
    ids = lm.encode(text)
    if not ids:
        raise ValueError("The prompt has no tokens.")
    if len(ids) > ATTN_MAX_TOKENS:
        raise ValueError(
            f"The prompt is {len(ids):,} tokens long; this page reads at most {ATTN_MAX_TOKENS} (attention grows "
            "with the square of the length). Shorten it."
        )
    return ids


@st.cache_resource(show_spinner=False, max_entries=8)
def attention_run(model_key: str, text: str) -> AttentionRun:
    """One forward pass over ``text`` with attentions, hidden states and head outputs (shared across sessions).

    Raises:
        ValueError: Empty text, or more than :data:`ATTN_MAX_TOKENS` tokens (message ready to show).
    """
    lm = _load(model_key)
    return run_attention(lm, _ids_for(lm, text))


@st.cache_resource(show_spinner=False, max_entries=16)
def lens_result(model_key: str, text: str, positions: int = LENS_POSITIONS) -> LensResult:
    """The logit lens over the last ``positions`` tokens, from the cached run's hidden states (no extra forward)."""
    lm = _load(model_key)
    run = attention_run(model_key, text)
    return logit_lens(lm, run.ids, hidden_states=run.hidden_states, last_positions=positions, k=3)


@st.cache_resource(show_spinner=False, max_entries=16)
def generation(model_key: str, text: str, new_tokens: int) -> GeneratedAttention:
    """Greedy continuation of ``text`` and the attention that chose each new token (shared across sessions)."""
    lm = _load(model_key)
    return generated_attention(lm, _ids_for(lm, text), max(1, min(int(new_tokens), MAX_GEN_TOKENS)))


@st.cache_resource(show_spinner=False, max_entries=64)
def head_by_hand(model_key: str, text: str, layer: int, head: int, n_tokens: int) -> HeadArithmetic:
    """One head recomputed from the real weights on the first ``n_tokens`` tokens (cached; no forward pass)."""
    return head_arithmetic(_load(model_key), attention_run(model_key, text), layer, head, n_tokens)


@st.cache_resource(show_spinner=False, max_entries=16)
def bertviz_html(model_key: str, text: str, view: str, layers: tuple[int, ...], n_tokens: int, layer: int) -> str:
    """bertviz head view (``view="head"``) or model view of the first ``n_tokens`` tokens, offline HTML (cached:
    building the JSON for a long prompt takes a moment and the result is the same for every session)."""
    from components.bertviz_offline import head_view_html, model_view_html

    run = attention_run(model_key, text)
    sub = run.attentions[:, :, :n_tokens, :n_tokens]  # causal: the first n tokens' weights are exact as they are
    if view == "model":
        return model_view_html(run.tokens[:n_tokens], sub, list(layers))
    return head_view_html(run.tokens[:n_tokens], sub, list(layers), layer=layer)


# ------------------------------------------------------------------------------------------------------ figures
def axis_labels(tokens: Sequence[str], numbered: bool = True) -> list[str]:
    """Unique, readable axis labels: position and quoted token (spaces and newlines visible)."""
    labels = [f"{i}: {token_label(t)}" if numbered else token_label(t) for i, t in enumerate(tokens)]
    return unique_labels(labels)


def attention_heatmap(weights: torch.Tensor, tokens: Sequence[str], title: str | None = None) -> go.Figure:
    """Heatmap of a ``[T, T]`` attention matrix: rows are queries (the token reading), columns keys (the token read).

    Cells above the diagonal (future tokens, masked) are left blank.
    """
    w = weights.double().numpy()
    T = w.shape[0]
    z = np.where(np.triu(np.ones((T, T), dtype=bool), k=1), np.nan, w)
    labels = axis_labels(tokens)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale=WEIGHT_SCALE,
            zmin=0,
            zmax=1,
            colorbar=dict(title="weight"),
            hovertemplate="%{y} reads %{x}<br>weight %{z:.3f}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_layout(
        title=title,
        xaxis=dict(title="key: the token being looked at", type="category", tickangle=-45),
        yaxis=dict(title="query: the token looking", type="category", autorange="reversed"),
        height=max(360, min(900, 22 * T + 200)),
    )
    return fig


def head_grid(values: torch.Tensor, label: str, zmax: float | None = None, short: str = "value") -> go.Figure:
    """Layers × heads overview: one cell per head, coloured by a summary (e.g. weight on the first token)."""
    v = values.double().numpy()
    L, H = v.shape
    fig = go.Figure(
        go.Heatmap(
            z=v,
            x=[f"head {h}" for h in range(H)],
            y=[f"layer {i}" for i in range(L)],
            colorscale="Viridis",
            zmin=0,
            zmax=zmax,
            text=np.round(v, 2),
            texttemplate="%{text:.2f}",
            textfont=dict(size=10),
            colorbar=dict(title=short),
            hovertemplate="%{y}, %{x}<br>" + label + ": %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(type="category", side="top"),
        yaxis=dict(type="category", autorange="reversed"),
        height=max(420, 20 * L + 90),
    )
    return fig


def token_bars(weights: torch.Tensor, tokens: Sequence[str], query: int, title: str) -> go.Figure:
    """Bars of one query token's attention over itself and the tokens before it (the highest in orange)."""
    w = [float(x) for x in weights]
    labels = axis_labels(tokens[: len(w)])
    best = int(np.argmax(w)) if w else -1
    colours = ["#f76707" if i == best else (MUTED if i == query else ACCENT) for i in range(len(w))]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=w,
            marker_color=colours,
            text=[f"{x:.2f}" for x in w],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis=dict(type="category", tickangle=-45, title="earlier tokens (keys)"),
        yaxis=dict(title="attention weight", range=[0, max(w + [0.05]) * 1.15]),
        height=380,
        showlegend=False,
    )
    return fig


def lens_heatmap(lens: LensResult, token_text) -> go.Figure:
    """Layer × position heatmap of the logit lens: colour = probability of that layer's top token, text = the token.

    Args:
        lens: A :class:`engine.logit_lens.LensResult`.
        token_text: ``id -> readable text`` (the model's ``token_text``).
    """
    probs = lens.top_probs[:, :, 0].double().numpy()  # [L+1, P]
    ids = lens.top_ids[:, :, 0]
    text = [[_short(token_text(int(ids[r, c]))) for c in range(ids.shape[1])] for r in range(ids.shape[0])]
    x = unique_labels([f"{p}: after {token_label(t)}" for p, t in zip(lens.positions, lens.tokens)])
    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=x,
            y=lens.layer_labels,
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=10),
            colorscale=LENS_SCALE,
            zmin=0,
            zmax=1,
            colorbar=dict(title="p(top)"),
            hovertemplate="%{y}, %{x}<br>top token %{text}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(type="category", side="top", tickangle=-30),
        yaxis=dict(type="category", autorange="reversed"),
        height=max(520, 21 * probs.shape[0] + 140),
    )
    return fig


def _short(text: str, limit: int = 9) -> str:
    shown = text.replace("\n", "↵").replace("\t", "→")
    shown = "'" + shown + "'"
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def lens_trajectory(lens: LensResult, token_text, position_index: int = -1) -> go.Figure:
    """p(final prediction) and its rank at every layer for one position (log scale, so the rise is visible)."""
    p = lens.final_probs[:, position_index].double().numpy()
    ranks = lens.final_ranks[:, position_index].numpy()
    word = token_label(token_text(int(lens.final_ids[position_index])))
    floor = 1e-20  # tinier values (often the embeddings row) are drawn at the floor; the hover gives the true value
    fig = go.Figure(
        go.Scatter(
            x=lens.layer_labels,
            y=np.maximum(p, floor),
            mode="lines+markers",
            line=dict(color=ACCENT),
            customdata=np.stack([p, ranks], axis=-1),
            hovertemplate="%{x}<br>p = %{customdata[0]:.3g}, rank %{customdata[1]:,}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Probability of the final answer {word} if the model stopped here (below 1e-20 drawn at the bottom)",
        yaxis=dict(type="log", title="probability (log scale)", exponentformat="power"),
        xaxis=dict(type="category", tickangle=-45),
        height=380,
    )
    return fig


def generated_heatmap(gen: GeneratedAttention, layer: int | None, skip_first: bool = False) -> go.Figure:
    """Rows: each generated token; columns: prompt tokens; colour: weight while choosing it (head average).

    Args:
        gen: The generation and its attention.
        layer: One layer, or ``None`` for the average of all layers.
        skip_first: Leave out the first prompt token (the attention sink) so the colour scale shows the rest.
    """
    w = gen.over_prompt(layer).double().numpy()  # [G, P]
    labels = axis_labels(gen.tokens[: gen.prompt_len])
    if skip_first and w.shape[1] > 1:
        w, labels = w[:, 1:], labels[1:]
    rows = unique_labels([f"{i + 1}. {token_label(t)}" for i, t in enumerate(gen.generated)])
    fig = go.Figure(
        go.Heatmap(
            z=w,
            x=labels,
            y=rows,
            colorscale=WEIGHT_SCALE,
            zmin=0,
            zmax=max(float(w.max()) if w.size else 1.0, 1e-6),
            colorbar=dict(title="weight"),
            hovertemplate="choosing %{y}<br>looked at %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(type="category", tickangle=-45, title="prompt tokens"),
        yaxis=dict(type="category", autorange="reversed", title="generated token"),
        height=max(300, 30 * len(rows) + 200),
    )
    return fig


def mask_patterns(real_avg: torch.Tensor, tokens: Sequence[str]) -> go.Figure:
    """Three architectures' masks (illustrations) beside this model's real head-averaged attention.

    Args:
        real_avg: ``[T, T]`` this model's attention averaged over heads (and layers) for the prompt.
        tokens: The prompt's tokens (only their count and labels are used for the illustrations).
    """
    T = min(len(tokens), 12)
    toks = [token_label(t) for t in tokens[:T]]
    enc = np.ones((T, T))
    dec = np.tril(np.ones((T, T)))
    out_len = max(3, min(6, T))
    cross = np.ones((out_len, T))
    real = real_avg[:T, :T].double().numpy()
    real = np.where(np.triu(np.ones((T, T), dtype=bool), k=1), np.nan, real)
    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.07)
    grey = [[0, "#e9ecef"], [1, "#4c6ef5"]]
    for col, z in ((1, enc), (2, dec)):
        fig.add_trace(go.Heatmap(z=z, x=toks, y=toks, colorscale=grey, zmin=0, zmax=1, showscale=False,
                                 hovertemplate="%{y} may see %{x}: %{z:.0f}<extra>illustration</extra>"), 1, col)
    outs = [f"out {i + 1}" for i in range(out_len)]
    fig.add_trace(go.Heatmap(z=cross, x=toks, y=outs, colorscale=grey, zmin=0, zmax=1, showscale=False,
                             hovertemplate="%{y} may see input %{x}<extra>illustration</extra>"), 1, 3)
    fig.add_trace(go.Heatmap(z=real, x=toks, y=toks, colorscale=WEIGHT_SCALE, zmin=0, zmax=1, showscale=False,
                             hoverongaps=False,
                             hovertemplate="%{y} reads %{x}: %{z:.3f}<extra>measured</extra>"), 1, 4)
    titles = (
        "<b>Encoder (BERT)</b><br>every token sees all",
        "<b>Decoder (GPT)</b><br>only earlier tokens",
        "<b>Encoder-decoder (T5)</b><br>cross-attention: output reads input",
        "<b>This model, measured</b><br>average of all heads",
    )
    for i, title in enumerate(titles, start=1):
        fig.update_xaxes(type="category", showticklabels=False, title_text=title, row=1, col=i)
        fig.update_yaxes(type="category", autorange="reversed", showticklabels=(i in (1, 3)), row=1, col=i)
    fig.update_layout(height=360, title="Who may attend to whom (rows read columns)")
    return fig
