"""Cached computations and figures for the context-window page.

Every cached function is keyed by plain values (model key, token-id tuples, numbers), so identical requests from
different sessions run the model once, and widgets that only re-draw (e.g. the window slider's greyed-out chips) never
run it. Results are shared: never modify them.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from components.charts import ACCENT, HIGHLIGHT, MUTED
from components.model import load_model
from engine import context as ctx
from engine.lm import MAX_INPUT_TOKENS
from engine.predict import NextTokenView, top_candidates

#: Sequence lengths the cost measurement can use (the page lets the user pick the largest).
COST_LENGTHS = (16, 32, 64, 128, 256, 512)
#: The long-text section scores at most this many tokens (bounded run time with a small stride).
MAX_LONG_TOKENS = 512


@st.cache_resource(show_spinner=False, max_entries=256)
def tokenize(model_key: str, text: str) -> tuple[int, ...]:
    """Token ids of ``text`` (no special tokens added)."""
    return tuple(load_model(model_key).encode(text))


@st.cache_resource(show_spinner=False, max_entries=256)
def token_pieces(model_key: str, ids: tuple[int, ...]) -> tuple[str, ...]:
    """Readable text of each token."""
    return tuple(load_model(model_key).token_texts(ids))


@st.cache_resource(show_spinner="Running the model…", max_entries=256)
def next_view(model_key: str, ids: tuple[int, ...], k: int = 6) -> NextTokenView:
    """Top-``k`` next tokens after ``ids`` (one forward pass)."""
    lm = load_model(model_key)
    return top_candidates(lm, lm.next_token_probs(ids), k)


@st.cache_resource(show_spinner="Running the model…", max_entries=256)
def answer_prob(model_key: str, ids: tuple[int, ...], answer: str) -> float:
    """p(answer | ids) on the real model."""
    return ctx.answer_probability(load_model(model_key), ids, answer)


@st.cache_resource(show_spinner="Trying every window size…", max_entries=32)
def window_sweep(
    model_key: str, ids: tuple[int, ...], answer: str, fact_start: int | None
) -> list[ctx.WindowSweepPoint]:
    """p(answer) for window sizes from 4 tokens to the whole text."""
    return ctx.window_sweep(load_model(model_key), ids, answer, ctx.sweep_windows(len(ids)), fact_start)


@st.cache_resource(show_spinner="Measuring forward passes on this machine…", max_entries=8)
def measure_cost(model_key: str, lengths: tuple[int, ...]) -> list[ctx.CostPoint]:
    """Forward time and attention memory per sequence length, measured once per process and shared."""
    lm = load_model(model_key)
    filler = lm.encode("The model reads every earlier token before it predicts the next one. ")
    return ctx.measure_cost(lm, lengths, filler, repeats=2)  # fastest of two: less noise from other work


@st.cache_resource(show_spinner="Sliding the window over the text…", max_entries=64)
def sliding_scores(model_key: str, ids: tuple[int, ...], window: int, stride: int) -> ctx.SlidingScore:
    """Sliding-window scores of ``ids``."""
    return ctx.sliding_window_scores(load_model(model_key), ids, window, stride)


@st.cache_resource(show_spinner="Scoring with the whole text as context…", max_entries=64)
def full_context_scores(model_key: str, ids: tuple[int, ...]) -> ctx.SlidingScore:
    """Scores with every earlier token in view (one pass): the reference the windows are compared with."""
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(f"More than {MAX_INPUT_TOKENS:,} tokens: too long for one pass on this page.")
    return ctx.sliding_window_scores(load_model(model_key), ids, len(ids), len(ids))


# -------------------------------------------------------------------------------------------------------- figures
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


def sweep_figure(points: list[ctx.WindowSweepPoint], answer: str, fact_window: int | None) -> go.Figure:
    """p(answer) against window size; points where the fact is out of view are grey."""
    fig = go.Figure(
        go.Scatter(
            x=[p.window for p in points],
            y=[p.prob for p in points],
            mode="lines+markers",
            line={"color": ACCENT},
            marker={"color": [ACCENT if p.fact_in_view else MUTED for p in points], "size": 9},
            hovertemplate="window %{x} tokens<br>p = %{y:.4f}<extra></extra>",
            name=f"p('{answer}')",
        )
    )
    if fact_window is not None:
        fig.add_vline(
            x=fact_window, line_dash="dash", line_color=HIGHLIGHT, annotation_text="fact fully in view from here"
        )
    fig.update_layout(
        xaxis_title="window size (tokens the model sees)",
        yaxis_title=f"p('{answer}')",
        yaxis={"rangemode": "tozero"},
        height=330,
        showlegend=False,
    )
    return fig


def cost_figures(points: list[ctx.CostPoint], layers: int, heads: int) -> tuple[go.Figure, go.Figure]:
    """Measured forward time, and measured attention memory with the ``L·H·T²`` curve from the config."""
    xs = [p.n_tokens for p in points]
    time_fig = go.Figure(
        go.Scatter(
            x=xs,
            y=[p.seconds * 1000 for p in points],
            mode="lines+markers",
            line={"color": ACCENT},
            hovertemplate="%{x} tokens: %{y:.0f} ms<extra></extra>",
        )
    )
    time_fig.update_layout(
        title="Forward time (measured)", xaxis_title="sequence length T (tokens)", yaxis_title="milliseconds",
        height=320, showlegend=False,
    )
    curve_x = list(range(0, max(xs) + 1, max(1, max(xs) // 64)))
    mem_fig = go.Figure(
        [
            go.Scatter(
                x=curve_x,
                y=[ctx.attention_bytes(t, layers, heads) / 2**20 for t in curve_x],
                mode="lines",
                line={"color": MUTED, "dash": "dash"},
                name=f"{layers}·{heads}·T²·4 bytes (config)",
                hoverinfo="skip",
            ),
            go.Scatter(
                x=xs,
                y=[p.attention_bytes / 2**20 for p in points],
                mode="markers",
                marker={"color": HIGHLIGHT, "size": 10},
                name="measured attention tensor",
                hovertemplate="%{x} tokens: %{y:.1f} MiB<extra></extra>",
            ),
        ]
    )
    mem_fig.update_layout(
        title="Attention weights, all layers (MiB)", xaxis_title="sequence length T (tokens)", yaxis_title="MiB",
        height=320, legend={"orientation": "h", "y": -0.3},
    )
    return time_fig, mem_fig


def context_figure(runs: dict[str, ctx.SlidingScore]) -> go.Figure:
    """How many earlier tokens each scored token could see, for each way of reading a long text."""
    colours = (MUTED, ACCENT, HIGHLIGHT)
    fig = go.Figure()
    for (name, run), colour in zip(runs.items(), colours):
        fig.add_trace(
            go.Scatter(
                x=[t.position for t in run.tokens],
                y=run.context,
                mode="lines",
                name=name,
                line={"color": colour, "width": 2},
                hovertemplate="token %{x}: %{y} tokens of context<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis_title="position in the text (token)", yaxis_title="tokens of context seen", height=320,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig
