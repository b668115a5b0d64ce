"""Cached computations and figures for the next-token and temperature pages.

Every model call goes through a ``st.cache_resource`` function keyed by plain values (model key, token ids,
settings), so a slider that only re-shapes a distribution never runs the model, and 30 students on the same example
cost one forward pass. Cached results are shared: never modify them.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st

from components.charts import ACCENT, HIGHLIGHT, token_label, unique_labels
from components.compute import distribution_for_ids, prompt_ids
from components.model import load_model, selected_key
from engine.generation import BatchSample, sample_continuations
from engine.lm import LanguageModel
from engine.predict import Probe, continuation_probs, probe

#: Temperatures drawn together on the overlay chart (the current slider value is added).
OVERLAY_TEMPERATURES = (0.5, 1.0, 2.0)
CUT_K = "#e03131"  # removed by top-k
CUT_P = "#f59f00"  # removed by top-p


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:")


def md_escape(text: str) -> str:
    """Backslash-escape Markdown syntax in user- or model-derived text shown through ``st.markdown``-like labels.

    Token texts such as ``'**'`` or a typed ``[link](…)`` must show as typed, not as formatting or a link.
    """
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


# ------------------------------------------------------------------------------------------------ cached model calls
def encode_prompt(lm: LanguageModel, text: str) -> list[int]:
    """Token ids of a prompt (cached), or a ``ValueError`` whose message is ready to show."""
    return list(prompt_ids(text, lm.spec.key))


@st.cache_resource(show_spinner=False, max_entries=256)
def _probe(model_key: str, ids: tuple[int, ...], text: str) -> Probe | None:
    return probe(load_model(model_key), distribution_for_ids(ids).probs, text)


def cached_probe(ids: Sequence[int], text: str) -> Probe | None:
    """Where ``text``'s first token ranks after ``ids`` (see :func:`engine.predict.probe`; cached)."""
    return _probe(selected_key(), tuple(int(i) for i in ids), text)


@st.cache_resource(show_spinner=False, max_entries=256)
def _continuation_probs(model_key: str, context: tuple[int, ...], cont: tuple[int, ...]) -> tuple[float, ...]:
    return tuple(continuation_probs(load_model(model_key), list(context), list(cont)))


def chain_probs(context: Sequence[int], cont: Sequence[int]) -> tuple[float, ...]:
    """p of each token of ``cont`` given ``context`` and the tokens before it (one cached forward)."""
    return _continuation_probs(selected_key(), tuple(int(i) for i in context), tuple(int(i) for i in cont))


@st.cache_resource(show_spinner=False, max_entries=64)
def _batch(
    model_key: str, ids: tuple[int, ...], n: int, new: int, temperature: float, top_k: int, top_p: float, seed: int
) -> BatchSample:
    return sample_continuations(load_model(model_key), list(ids), n, new, temperature, top_k, top_p, seed)


def batch_samples(
    ids: Sequence[int], n: int, new: int, temperature: float, top_k: int, top_p: float, seed: int
) -> BatchSample:
    """``n`` continuations sampled in one batch; the same settings and seed give the same result (cached)."""
    return _batch(
        selected_key(), tuple(int(i) for i in ids), int(n), int(new), float(temperature), int(top_k), float(top_p),
        int(seed),
    )


# ------------------------------------------------------------------------------------------------ figures
def _labels(pieces: Sequence[str]) -> list[str]:
    return unique_labels([token_label(p) for p in pieces])


def temperature_overlay_figure(
    pieces: Sequence[str], curves: dict[float, Sequence[float]], current: float, log_scale: bool = False
) -> go.Figure:
    """p(token) of the same tokens under several temperatures, one line per T (the current T drawn thick).

    Args:
        pieces: Token texts, most likely first (at T = 1).
        curves: Temperature → probability of each token.
        current: The slider's temperature, highlighted.
        log_scale: Logarithmic probability axis, so the tail that high temperatures lift is visible.
    """
    labels = _labels(pieces)
    fig = go.Figure()
    for t, probs in sorted(curves.items()):
        is_current = abs(t - current) < 1e-9
        name = ("T = 0 (greedy)" if t <= 0 else f"T = {t:g}") + (" (slider)" if is_current else "")
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=[float(p) for p in probs],
                mode="lines+markers",
                name=name,
                line=dict(width=4 if is_current else 1.5, color=HIGHLIGHT if is_current else None),
                marker=dict(size=9 if is_current else 6),
                hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        xaxis=dict(title="token (ordered by the model's own probability, T = 1)", type="category", tickangle=-45),
        yaxis=(
            dict(title="probability (log scale)", type="log", exponentformat="power")
            if log_scale
            else dict(title="probability", tickformat=".0%", rangemode="tozero")
        ),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        height=380,
    )
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
    labels = _labels(pieces)
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
    labels = _labels(pieces)
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


def entropy_steps_figure(steps: Sequence[int], entropies: Sequence[float], probs: Sequence[float]) -> go.Figure:
    """Entropy of each step's distribution and the chosen token's probability, step by step."""
    fig = go.Figure(
        [
            go.Scatter(x=list(steps), y=list(entropies), mode="lines+markers", name="entropy (bits)",
                       marker_color=ACCENT),
            go.Scatter(x=list(steps), y=list(probs), mode="lines+markers", name="p(chosen token)", yaxis="y2",
                       marker_color=HIGHLIGHT),
        ]
    )
    fig.update_layout(
        xaxis=dict(title="step", dtick=1),
        yaxis=dict(title="entropy (bits)", rangemode="tozero"),
        yaxis2=dict(title="p(chosen)", overlaying="y", side="right", range=[0, 1.02], tickformat=".0%", dtick=0.25,
                    showgrid=False),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        height=300,
    )
    return fig

