"""Bar charts: probabilities, counts, losses and scores (pure plotly: plain values in, a figure out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from components.figures.base import (
    ACCENT,
    CUT_K,
    CUT_P,
    HIGHLIGHT,
    MUTED,
    axis_labels,
    token_label,
    token_labels,
    unique_labels,
)
from components.figures.html import MATCH_COLOURS, surprise_colour
from engine import tokens as tok
from engine.embeddings import Neighbour
from engine.evaluation import BleuResult
from engine.prompting import LabelScore
from engine.scoring import TextScore


def probability_bars(
    pieces: Sequence[str],
    probs: Sequence[float],
    other_mass: float | None = None,
    highlight: Sequence[bool] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Horizontal bars of token probabilities, most likely on top, with an optional "everything else" bar.

    Args:
        pieces: Token texts.
        probs: Their probabilities (0..1).
        other_mass: Probability of all tokens not listed, drawn as its own grey bar.
        highlight: Per-token flag to colour a bar differently.
        title: Figure title.
    """
    labels = unique_labels([token_label(p) for p in pieces])
    values = [float(p) for p in probs]
    colours = [HIGHLIGHT if (highlight is not None and highlight[i]) else ACCENT for i in range(len(values))]
    if other_mass is not None:
        labels.append("(all other tokens)")
        values.append(float(other_mass))
        colours.append(MUTED)
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=[f"{v:.1%}" if v >= 0.001 else f"{v:.2e}" for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(title="probability", tickformat=".0%", rangemode="tozero"),
        height=max(220, 28 * len(labels) + 80),
        showlegend=False,
    )
    return fig


def class_bars(names: list[str], probs: list[float], colours: list[str] | None = None, title: str | None = None,
               other_mass: float | None = None) -> go.Figure:
    """Horizontal probability bars for a handful of classes (most likely first)."""
    labels, values = list(names), [float(p) for p in probs]
    cols = list(colours) if colours else [ACCENT] * len(values)
    if other_mass is not None:
        labels.append("(all other tokens)")
        values.append(float(other_mass))
        cols.append(MUTED)
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", marker_color=cols,
                           text=[f"{v:.1%}" if v >= 0.001 else f"{v:.1e}" for v in values], textposition="auto",
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_layout(title=title, yaxis=dict(autorange="reversed", type="category"),
                      xaxis=dict(title="probability", tickformat=".0%", range=[0, 1]),
                      height=max(200, 30 * len(labels) + 90), showlegend=False)
    return fig


def cut_figure(
    pieces: Sequence[str],
    scaled: Sequence[float],
    final: Sequence[float],
    status: Sequence[str],
    log_scale: bool = False,
) -> go.Figure:
    """Bars of softmax(logits / T) coloured by what top-k / top-p do to each token, plus the renormalised result.

    Args:
        pieces: Token texts, most likely first.
        scaled: Probability after temperature, before the cuts.
        final: Probability actually sampled with (0 for cut tokens).
        status: Per token ``"kept"``, ``"top-k"`` (cut by top-k) or ``"top-p"`` (cut by top-p).
        log_scale: Logarithmic probability axis, so the small cut bars stay visible.
    """
    labels = token_labels(pieces)
    colours = {"kept": ACCENT, "top-k": CUT_K, "top-p": CUT_P}
    names = {"kept": "kept", "top-k": "cut by top-k", "top-p": "cut by top-p"}
    fig = go.Figure()
    for kind in ("kept", "top-k", "top-p"):
        idx = [i for i, s in enumerate(status) if s == kind]
        fig.add_trace(
            go.Bar(
                x=[labels[i] for i in idx],
                y=[float(scaled[i]) for i in idx],
                name=f"{names[kind]} (after temperature)",
                marker_color=colours[kind],
                hovertemplate="%{x}: %{y:.4f}<extra>" + names[kind] + "</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[float(p) for p in final],
            mode="markers",
            name="sampled with (renormalised)",
            marker=dict(symbol="diamond", size=10, color="#212529"),
            hovertemplate="%{x}: %{y:.4f}<extra>renormalised</extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(type="category", categoryorder="array", categoryarray=labels, tickangle=-45),
        yaxis=(
            dict(title="probability (log scale)", type="log", exponentformat="power")
            if log_scale
            else dict(title="probability", tickformat=".0%", rangemode="tozero")
        ),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        barmode="overlay",
        height=380,
    )
    return fig


def histogram_figure(pieces: Sequence[str], empirical: Sequence[float], theoretical: Sequence[float], n: int) -> go.Figure:
    """Share of the ``n`` samples that started with each token, next to the probability they were drawn with."""
    labels = token_labels(pieces)
    fig = go.Figure(
        [
            go.Bar(
                x=labels, y=[float(v) for v in empirical], name=f"share of the {n} samples", marker_color=HIGHLIGHT,
                hovertemplate="%{x}: %{y:.1%}<extra>sampled</extra>",
            ),
            go.Bar(
                x=labels, y=[float(v) for v in theoretical], name="probability (theory)", marker_color=ACCENT,
                hovertemplate="%{x}: %{y:.1%}<extra>theory</extra>",
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        xaxis=dict(type="category", tickangle=-45, title="first generated token"),
        yaxis=dict(tickformat=".0%", rangemode="tozero", title="share / probability"),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        height=360,
    )
    return fig


def comparison_figure(rows: Sequence[tok.ComparisonRow]) -> go.Figure:
    """Tokens needed for the same sentence in each language, the reference language highlighted."""
    names = [r.name for r in rows]
    fig = go.Figure(
        go.Bar(
            x=[r.stats.tokens for r in rows],
            y=names,
            orientation="h",
            marker_color=[ACCENT if i == 0 else "#f59f00" for i in range(len(rows))],
            text=[f"{r.stats.tokens} tokens · {r.relative_tokens:.1f}×" for r in rows],
            textposition="auto",
            customdata=[[r.text, r.stats.characters, r.stats.chars_per_token] for r in rows],
            hovertemplate="<b>%{y}</b>: %{x} tokens<br>%{customdata[0]}<br>%{customdata[1]} characters, "
            "%{customdata[2]:.2f} characters per token<extra></extra>",
        )
    )
    fig.update_layout(
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(title="tokens for the same sentence", rangemode="tozero"),
        height=max(240, 34 * len(rows) + 80),
        showlegend=False,
    )
    return fig


def byte_length_figure(counts: dict[int, int], cap: int = 20) -> go.Figure:
    """How many vocabulary entries have each length in bytes (longer ones grouped in the last bar)."""
    xs = [str(n) for n in range(1, cap)] + [f"{cap}+"]
    ys = [counts.get(n, 0) for n in range(1, cap)] + [sum(v for k, v in counts.items() if k >= cap)]
    fig = go.Figure(
        go.Bar(
            x=xs,
            y=ys,
            marker_color=[ACCENT] * (len(xs) - 1) + [MUTED],
            hovertemplate="%{x} bytes: %{y:,} entries<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(title="length of the entry in bytes", type="category"),
        yaxis=dict(title="vocabulary entries"),
        height=300,
        showlegend=False,
    )
    return fig


def label_figure(columns: dict[str, list[LabelScore]]) -> go.Figure:
    """Grouped bars: p(label) for each label under each prompt, side by side."""
    colours = (MUTED, ACCENT, HIGHLIGHT)
    fig = go.Figure()
    for (name, scores), colour in zip(columns.items(), colours):
        fig.add_trace(
            go.Bar(
                x=[f"'{s.label}'" for s in scores],
                y=[s.prob for s in scores],
                name=name,
                marker_color=colour,
                text=[f"{s.prob:.1%}" for s in scores],
                textposition="outside",
                hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "p(label | prompt)", "tickformat": ".0%", "rangemode": "tozero"},
        xaxis={"title": "label (the leading space is part of the token)", "type": "category"},
        height=340,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def usage_gauge(n_tokens: int, limit: int) -> go.Figure:
    """A horizontal bar of the model's real context window: the part the text fills, and what is left (or over)."""
    used = min(n_tokens, limit)
    parts = [("your text", used, HIGHLIGHT if n_tokens > limit else ACCENT), ("free", limit - used, "#e9ecef")]
    if n_tokens > limit:
        parts.append(("over the limit", n_tokens - limit, "#fa5252"))
    fig = go.Figure(
        [
            go.Bar(
                x=[value], y=["window"], orientation="h", name=name, marker_color=colour,
                hovertemplate=f"{name}: %{{x:,}} tokens<extra></extra>",
            )
            for name, value, colour in parts
        ]
    )
    fig.update_layout(
        barmode="stack",
        height=150,
        xaxis={"title": "tokens", "range": [0, max(limit, n_tokens)], "tickformat": ","},
        yaxis={"visible": False},
        legend={"orientation": "h", "y": 1.25},
    )
    fig.add_vline(x=limit, line_color="#495057", line_dash="dot", annotation_text=f"limit {limit:,}", annotation_position="top left")
    return fig


def precision_figure(result: BleuResult) -> go.Figure:
    """Raw n-gram precisions (matched / total) for n = 1..4."""
    xs = [f"{n}-gram" for n in range(1, 5)]
    ys = [(c / t) if t else 0.0 for c, t in zip(result.counts, result.totals)]
    fig = go.Figure(
        go.Bar(
            x=xs, y=ys, marker_color=[MATCH_COLOURS[n] for n in range(1, 5)],
            marker_line=dict(color="#2b8a3e", width=1),
            text=[f"{c}/{t}" for c, t in zip(result.counts, result.totals)], textposition="auto",
            hovertemplate="%{x}: %{y:.0%} of the candidate's n-grams appear in a reference<extra></extra>",
        )
    )
    fig.update_layout(yaxis=dict(title="precision", tickformat=".0%", range=[0, 1.05]), height=280, showlegend=False)
    return fig


def candidates_figure(labels: Sequence[str], bleus: Sequence[float], same_meaning: Sequence[bool]) -> go.Figure:
    """BLEU per candidate, coloured by whether the candidate keeps the reference's meaning."""
    fig = go.Figure(
        go.Bar(
            x=list(bleus),
            y=list(labels),
            orientation="h",
            marker_color=[ACCENT if ok else HIGHLIGHT for ok in same_meaning],
            text=[f"{b:.1f}" for b in bleus],
            textposition="auto",
            customdata=["same meaning" if ok else "different meaning" for ok in same_meaning],
            hovertemplate="%{y}<br>BLEU %{x:.1f} (%{customdata})<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(title="BLEU (0-100)", range=[0, 100]),
        yaxis=dict(autorange="reversed", type="category"),
        height=110 + 48 * len(labels),
        showlegend=False,
    )
    fig.update_layout(title=dict(text="BLEU against the reference · blue: same meaning · orange: different meaning",
                                 font=dict(size=13)))
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


def neighbour_figure(items: Sequence[Neighbour], highlight: str | None = None) -> go.Figure:
    """Horizontal bars of cosine similarity for a list of vocabulary neighbours."""
    hl = (highlight or "").strip().lower()
    fig = go.Figure(
        go.Bar(
            x=[n.cosine for n in items],
            y=unique_labels([token_label(n.text) for n in items]),
            orientation="h",
            marker_color=[HIGHLIGHT if hl and n.text.strip().lower() == hl else ACCENT for n in items],
            text=[f"{n.cosine:.3f}" for n in items],
            textposition="auto",
            customdata=[[n.token_id, n.rank] for n in items],
            hovertemplate="#%{customdata[1]} %{y} (id %{customdata[0]}): cosine %{x:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(title="cosine similarity", range=[0, 1]),
        height=max(240, 28 * len(items) + 80),
        showlegend=False,
    )
    return fig


def token_loss_figure(score: TextScore, title: str | None = None) -> go.Figure:
    """Bars of per-token loss in text order, with the average as a dashed line."""
    labels = unique_labels([token_label(t.text) for t in score.tokens])
    losses = [t.loss for t in score.tokens]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=losses,
            marker_color=[surprise_colour(v) for v in losses],
            marker_line=dict(color="#c92a2a", width=0.5),
            customdata=[[t.prob, t.rank] for t in score.tokens],
            hovertemplate="%{x}<br>loss %{y:.2f} nats<br>p = %{customdata[0]:.2e}<br>rank %{customdata[1]}<extra></extra>",
        )
    )
    fig.add_hline(y=score.mean_loss, line_dash="dash", line_color=ACCENT,
                  annotation_text=f"average {score.mean_loss:.2f}", annotation_position="top left")
    fig.update_layout(
        title=title,
        xaxis=dict(type="category", tickangle=-45, title=None),
        yaxis=dict(title="loss = −log p (nats)", rangemode="tozero"),
        height=360,
        showlegend=False,
    )
    return fig


def baseline_figure(names: Sequence[str], scores: Sequence[TextScore], vocab_size: int) -> go.Figure:
    """Average loss of each variant, with perplexity in the labels and the uniform-guess loss as a reference."""
    losses = [s.mean_loss for s in scores]
    fig = go.Figure(
        go.Bar(
            x=list(names),
            y=losses,
            marker_color=[ACCENT, HIGHLIGHT, MUTED][: len(losses)],
            text=[f"loss {v:.2f}<br>perplexity {s.perplexity:,.0f}" for v, s in zip(losses, scores)],
            textposition="auto",
            hovertemplate="%{x}: average loss %{y:.3f} nats<extra></extra>",
        )
    )
    uniform = math.log(vocab_size)
    fig.add_hline(y=uniform, line_dash="dot", line_color="#495057",
                  annotation_text=f"uniform guess over {vocab_size:,} tokens: {uniform:.2f}",
                  annotation_position="top left")
    fig.update_layout(yaxis=dict(title="average loss (nats)", rangemode="tozero"), height=340, showlegend=False)
    return fig


def before_after_tokens_figure(pieces: Sequence[str], before: Sequence[float], after: Sequence[float]) -> go.Figure:
    """Grouped bars of per-token loss before and after a step."""
    labels = unique_labels([token_label(p) for p in pieces])
    fig = go.Figure(
        [
            go.Bar(name="before", x=labels, y=list(before), marker_color=MUTED,
                   hovertemplate="%{x}: %{y:.2f} nats<extra>before</extra>"),
            go.Bar(name="after one step", x=labels, y=list(after), marker_color=ACCENT,
                   hovertemplate="%{x}: %{y:.2f} nats<extra>after</extra>"),
        ]
    )
    fig.update_layout(
        barmode="group",
        xaxis=dict(type="category", tickangle=-45),
        yaxis=dict(title="loss (nats)", rangemode="tozero"),
        height=340,
        legend=dict(orientation="h", y=1.1),
    )
    return fig


def preference_figure(labels: Sequence[str], scores: Sequence[TextScore]) -> go.Figure:
    """Per-answer total log-likelihood (higher = the model finds it more likely)."""
    fig = go.Figure(
        go.Bar(
            x=list(labels),
            y=[s.total_logprob for s in scores],
            marker_color=[ACCENT, HIGHLIGHT][: len(scores)],
            text=[f"log p = {s.total_logprob:.1f}<br>{len(s.tokens)} tokens, {-s.mean_loss:.2f} per token"
                  for s in scores],
            textposition="auto",
            hovertemplate="%{x}: log p = %{y:.2f}<extra></extra>",
        )
    )
    fig.update_layout(yaxis=dict(title="log p(answer | question), nats"), height=320, showlegend=False)
    return fig


def compare_distributions_figure(
    pieces: Sequence[str], before: Sequence[float], after: Sequence[float], starred: Sequence[bool]
) -> go.Figure:
    """Grouped bars: next-token probabilities before and after fine-tuning (ids from
    :func:`engine.predict.union_top_ids`); ``starred`` marks the token the fact puts next."""
    labels = unique_labels([token_label(p) + (" ★" if s else "") for p, s in zip(pieces, starred)])
    fig = go.Figure(
        [
            go.Bar(name="original model", y=labels, x=[float(v) for v in before], orientation="h",
                   marker_color=MUTED, hovertemplate="%{y}: %{x:.4f}<extra>original</extra>"),
            go.Bar(name="after fine-tuning", y=labels, x=[float(v) for v in after], orientation="h",
                   marker_color=ACCENT, hovertemplate="%{y}: %{x:.4f}<extra>fine-tuned</extra>"),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(title="probability of the next token", tickformat=".0%", range=[0, 1]),
        height=max(280, 40 * len(labels) + 80),
        legend=dict(orientation="h", y=1.08),
    )
    return fig
