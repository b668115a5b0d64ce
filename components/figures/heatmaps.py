"""Heatmap figures (attention matrices, head grids, logit lens, cosine matrices, vector strips): pure plotly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from components.figures.base import axis_labels, short_label, token_label, unique_labels
from engine.attention import GeneratedAttention
from engine.logit_lens import LensResult
from engine.text import html_escape

# --- attention and embeddings ---
# Sequential scales readable on light and dark backgrounds (the page background shows only around the plot).
WEIGHT_SCALE = "Blues"
LENS_SCALE = "YlGnBu"


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


def lens_heatmap(lens: LensResult, token_text) -> go.Figure:
    """Layer × position heatmap of the logit lens: colour = probability of that layer's top token, text = the token.

    Args:
        lens: A :class:`engine.logit_lens.LensResult`.
        token_text: ``id -> readable text`` (the model's ``token_text``).
    """
    probs = lens.top_probs[:, :, 0].double().numpy()  # [L+1, P]
    ids = lens.top_ids[:, :, 0]
    text = [[short_label(token_text(int(ids[r, c]))) for c in range(ids.shape[1])] for r in range(ids.shape[0])]
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




def vector_figure(rows: np.ndarray, labels: Sequence[str]) -> go.Figure:
    """Each row of the embedding table as a colour strip: one cell per dimension, blue negative, red positive."""
    limit = float(np.abs(rows).max()) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=rows,
            x=list(range(rows.shape[1])),
            y=unique_labels([token_label(x) for x in labels]),
            colorscale="RdBu_r",
            zmin=-limit,
            zmax=limit,
            colorbar=dict(title="value", thickness=12),
            hovertemplate="%{y} · dimension %{x}: %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(title=f"dimension (0 … {rows.shape[1] - 1})"),
        yaxis=dict(type="category", autorange="reversed"),
        height=110 + 45 * rows.shape[0],
    )
    return fig


def cosine_heatmap(
    labels: Sequence[str], sims: np.ndarray, title: str | None = None, hover: Sequence[str] | None = None
) -> go.Figure:
    """Annotated cosine-similarity matrix.

    Args:
        labels: Axis label per row/column (already HTML-escaped).
        sims: ``[N, N]`` similarities.
        title: Figure title.
        hover: Longer text per row/column for the hover box (already HTML-escaped); defaults to the labels.
    """
    names = unique_labels(list(labels))
    n = len(names)
    long = list(hover) if hover is not None else names
    annotate = n <= 20
    fig = go.Figure(
        go.Heatmap(
            z=sims,
            x=names,
            y=names,
            colorscale="Viridis",
            zmin=float(min(0.0, sims.min())),
            zmax=1.0,
            text=[[f"{v:.2f}" for v in row] for row in sims.tolist()] if annotate else None,
            texttemplate="%{text}" if annotate else None,
            customdata=[[f"{long[i]}<br>{long[j]}" for j in range(n)] for i in range(n)],
            colorbar=dict(title="cosine", thickness=12),
            hovertemplate="%{customdata}<br>cosine %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(type="category", tickangle=-45),
        # The slanted labels below the matrix take ~6 px of height per character: without that room, presentation
        # mode's larger font left the matrix a 60-pixel strip and cut the longest label off.
        height=max(320, 26 * n + 160 + 6 * max((len(x) for x in names), default=0)),
    )
    return fig


# --- encoders ---
def weights_heatmap(weights: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str | None = None,
                    row_title: str = "query: the token looking", col_title: str = "key: the token being looked at",
                    zmax: float | None = 1.0) -> go.Figure:
    """Heatmap of any measured ``[R, C]`` attention matrix, every cell shown (no mask: zeros are drawn as zeros).

    Used for a bidirectional encoder, a decoder's causal self-attention and cross-attention alike, so the upper
    triangle is visible as measured rather than hidden.

    Args:
        weights: ``[R, C]`` weights (rows sum to 1).
        rows: Label of each row (the reading position).
        cols: Label of each column (the position read).
        title: Figure title.
        row_title: Y axis title.
        col_title: X axis title.
        zmax: Top of the colour scale (``None``: the largest weight).
    """
    z = np.asarray(weights, dtype=float)
    fig = go.Figure(go.Heatmap(
        z=z, x=unique_labels(list(cols)), y=unique_labels(list(rows)), colorscale=WEIGHT_SCALE, zmin=0,
        zmax=zmax if zmax is not None else max(float(z.max()) if z.size else 1.0, 1e-6), colorbar=dict(title="weight"),
        hovertemplate="%{y} reads %{x}<br>weight %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(
        title=title,
        xaxis=dict(title=col_title, type="category", tickangle=-45),
        yaxis=dict(title=row_title, type="category", autorange="reversed"),
        height=max(320, min(900, 22 * z.shape[0] + 220)),
    )
    return fig


def readers_figure(panels: Sequence[tuple[str, np.ndarray, Sequence[str]]]) -> go.Figure:
    """The same sentence read by different models, side by side: one measured ``[T, T]`` attention per panel.

    Args:
        panels: ``(title, weights [T, T], token labels)`` per model (each panel has its own tokens).
    """
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.08)
    for i, (title, w, toks) in enumerate(panels, start=1):
        labels = axis_labels(toks)
        fig.add_trace(go.Heatmap(
            z=np.asarray(w, dtype=float), x=labels, y=labels, colorscale=WEIGHT_SCALE, zmin=0, zmax=1,
            showscale=i == len(panels), colorbar=dict(title="weight"),
            hovertemplate="%{y} reads %{x}: %{z:.4f}<extra>measured</extra>",
        ), 1, i)
        # The panel's name goes under it (as in mask_patterns): titles above subplots collide with the chart top.
        fig.update_xaxes(type="category", tickangle=-60, title_text=f"<b>{html_escape(title)}</b>", row=1, col=i)
        fig.update_yaxes(type="category", autorange="reversed", row=1, col=i)
    n = max((len(p[2]) for p in panels), default=1)
    fig.update_layout(height=max(380, min(800, 20 * n + 260)))
    return fig
