"""Cached computations and figures for the "From ML to LLMs" page.

Model calls go through ``st.cache_resource`` functions keyed by (model key, plain inputs), so a slider that only
re-shapes a cached result never runs the model and a class of 30 on the same example costs one forward pass. The numpy
toys are cached with ``st.cache_data`` (cheap, but a classroom re-running them on every click adds up). Cached
results are shared between sessions: never modify them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from components.charts import ACCENT, HIGHLIGHT, MUTED, token_label
from components.model import load_model, selected_key
from engine import ml_basics as mb
from engine.lm import MAX_INPUT_TOKENS
from engine.predict import Distribution, distribution

CLASS_COLOURS = ("#4c6ef5", "#f76707", "#2f9e44")
XLIM = (-5.5, 5.5)
YLIM = (-4.5, 5.5)


# ------------------------------------------------------------------------------------------------------ toys (cached)
@st.cache_data(show_spinner=False, max_entries=64)
def regression(n: int, noise: float, degree: int, seed: int) -> tuple[np.ndarray, np.ndarray, mb.PolyFit, float]:
    """Toy data, its polynomial fit, and the fit's error on fresh points from the same curve (held-out MSE)."""
    x, y = mb.regression_data(n, noise, seed)
    fit = mb.fit_polynomial(x, y, degree)
    xt, yt = mb.regression_data(200, noise, seed + 1000)
    return x, y, fit, float(np.mean((fit.predict(xt) - yt) ** 2))


@st.cache_data(show_spinner=False, max_entries=32)
def classification(spread: float, seed: int) -> tuple[np.ndarray, np.ndarray, mb.SoftmaxClassifier]:
    """Three blobs and a softmax classifier trained on them."""
    X, y = mb.blobs(60, spread, seed)
    return X, y, mb.fit_softmax_classifier(X, y, 3)


@st.cache_data(show_spinner=False, max_entries=64)
def mixture(spread: float, data_seed: int, components: int, n_samples: int, sample_seed: int
            ) -> tuple[mb.Mixture, np.ndarray]:
    """A Gaussian mixture fitted to the classifier's points (labels ignored) and points sampled from it."""
    X, _ = mb.blobs(60, spread, data_seed)
    mix = mb.fit_mixture(X, components, data_seed)
    samples, _ = mix.sample(n_samples, sample_seed)
    return mix, samples


# ------------------------------------------------------------------------------------------------------ model (cached)
@dataclass(frozen=True)
class HeadSummary:
    """What the page shows of the next-token head for one prompt (plain values plus the ``[V]`` probabilities)."""

    n_tokens: int
    dist: Distribution  # p(next token) over all V tokens, with its top candidates ready
    weight_shape: tuple[int, int]
    hidden_size: int
    max_abs_diff: float
    has_bias: bool

    @property
    def probs(self) -> torch.Tensor:
        """``[V]`` next-token probabilities."""
        return self.dist.probs


def _check_len(ids: list[int], what: str) -> None:
    if not ids:
        raise ValueError(f"The {what} has no tokens.")
    if len(ids) > MAX_INPUT_TOKENS:
        raise ValueError(f"The {what} is {len(ids):,} tokens long; this page reads at most {MAX_INPUT_TOKENS:,}. Shorten it.")


@st.cache_resource(show_spinner=False, max_entries=256)
def _head(model_key: str, text: str) -> HeadSummary:
    lm = load_model(model_key)
    ids = lm.encode(text)
    _check_len(ids, "prompt")
    hc = mb.next_token_head(lm, ids)
    return HeadSummary(len(ids), distribution(lm, hc.logits), hc.weight_shape, int(hc.hidden.shape[0]), hc.max_abs_diff, hc.has_bias)


def head_summary(text: str) -> HeadSummary:
    """The LM's next-token classifier on ``text`` (one cached forward). Raises ``ValueError`` with a page message."""
    if not text.strip():
        raise ValueError("The prompt is empty.")
    return _head(selected_key(), text)


@st.cache_resource(show_spinner=False, max_entries=256)
def _compare(model_key: str, a: str, b: str) -> mb.SentenceComparison:
    return mb.compare_sentences(load_model(model_key), a, b)


def sentence_comparison(a: str, b: str) -> mb.SentenceComparison:
    """``log p(a)`` vs ``log p(b)`` on the session's model (cached). Raises ``ValueError`` with a page message."""
    return _compare(selected_key(), a, b)


@st.cache_resource(show_spinner=False, max_entries=256)
def _classify(model_key: str, text: str, few_shot: bool) -> mb.PromptClassification:
    return mb.classify_by_prompt(load_model(model_key), text, few_shot=few_shot)


def prompt_classification(text: str, few_shot: bool) -> mb.PromptClassification:
    """``p(label | text)`` by prompting (cached). Raises ``ValueError`` with a page message."""
    return _classify(selected_key(), text, bool(few_shot))


# ------------------------------------------------------------------------------------------------------ figures
def regression_figure(x: np.ndarray, y: np.ndarray, fit: mb.PolyFit) -> go.Figure:
    """Training points, the fitted polynomial and the true curve."""
    xs = np.linspace(-3.2, 3.2, 200)
    fig = go.Figure()
    fig.add_scatter(x=x, y=y, mode="markers", name="training points", marker=dict(color=MUTED, size=8))
    fig.add_scatter(x=xs, y=mb.true_curve(xs), mode="lines", name="true curve", line=dict(color=MUTED, dash="dot"))
    fig.add_scatter(x=xs, y=np.clip(fit.predict(xs), -6, 6), mode="lines", name=f"fit (degree {fit.degree})",
                    line=dict(color=ACCENT, width=3))
    fig.update_layout(xaxis_title="x (feature)", yaxis_title="y (number to predict)", yaxis_range=[-4.5, 4.5],
                      legend=dict(orientation="h", y=-0.25))
    return fig


def classifier_figure(X: np.ndarray, y: np.ndarray, clf: mb.SoftmaxClassifier, probe: tuple[float, float]) -> go.Figure:
    """Decision regions of the classifier (shaded by confidence), the points, and the probe point."""
    xs, ys, pts = mb.grid(XLIM, YLIM, 90)
    p = clf.predict_proba(pts)  # [n*n, 3]
    region = p.argmax(axis=1).reshape(len(ys), len(xs))
    fig = go.Figure()
    scale = [[0.0, CLASS_COLOURS[0]], [0.33, CLASS_COLOURS[0]], [0.34, CLASS_COLOURS[1]], [0.66, CLASS_COLOURS[1]],
             [0.67, CLASS_COLOURS[2]], [1.0, CLASS_COLOURS[2]]]
    # Hover on the background shows p(class | x) at that spot; the boundaries are where the colour changes.
    hover = np.array([" · ".join(f"{n}: {v:.0%}" for n, v in zip(mb.CLASS_NAMES, row)) for row in p])
    fig.add_heatmap(x=xs, y=ys, z=region, colorscale=scale, zmin=0, zmax=2, opacity=0.28, showscale=False,
                    text=hover.reshape(len(ys), len(xs)), hovertemplate="(%{x:.1f}, %{y:.1f})<br>%{text}<extra></extra>",
                    name="decision regions")
    for k, name in enumerate(mb.CLASS_NAMES):
        pts_k = X[y == k]
        fig.add_scatter(x=pts_k[:, 0], y=pts_k[:, 1], mode="markers", name=name,
                        marker=dict(color=CLASS_COLOURS[k], size=7, line=dict(width=0.5, color="white")))
    fig.add_scatter(x=[probe[0]], y=[probe[1]], mode="markers", name="your point",
                    marker=dict(symbol="star", size=20, color="#ffd43b", line=dict(width=1.5, color="#212529")))
    fig.update_layout(xaxis=dict(title="feature 1", range=XLIM), yaxis=dict(title="feature 2", range=YLIM),
                      legend=dict(orientation="h", y=-0.25))
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


def cumulative_logprob_figure(cmp: mb.SentenceComparison) -> go.Figure:
    """Running ``log p`` of each sentence, token by token: the last point is ``log p(sentence)``."""
    fig = go.Figure()
    for name, score, colour in (("A", cmp.score_a, ACCENT), ("B", cmp.score_b, HIGHLIGHT)):
        lps = [t.logprob for t in score.tokens]
        fig.add_scatter(
            x=list(range(1, len(lps) + 1)),
            y=np.cumsum(lps),
            mode="lines+markers",
            name=f"sentence {name}",
            line=dict(color=colour, width=3),
            customdata=[[token_label(t.text), t.logprob, t.rank] for t in score.tokens],
            hovertemplate="token %{x}: %{customdata[0]}<br>log p(token | before) = %{customdata[1]:.2f}"
            "<br>rank %{customdata[2]}<br>running log p = %{y:.2f}<extra>" + name + "</extra>",
        )
    fig.update_layout(xaxis_title="tokens read so far", yaxis_title="log p(text so far)  (nats)",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def mixture_figure(X: np.ndarray, mix: mb.Mixture, samples: np.ndarray) -> go.Figure:
    """The fitted density ``p(x)`` as contours, the real points, new sampled points and the component centres."""
    xs, ys, pts = mb.grid(XLIM, YLIM, 90)
    dens = np.exp(mix.log_density(pts)).reshape(len(ys), len(xs))
    fig = go.Figure()
    fig.add_contour(x=xs, y=ys, z=dens, colorscale="Blues", showscale=False, ncontours=12, opacity=0.7,
                    contours=dict(coloring="fill", showlines=False), hovertemplate="p(x) = %{z:.3f}<extra></extra>",
                    name="fitted p(x)")
    fig.add_scatter(x=X[:, 0], y=X[:, 1], mode="markers", name="real points (labels ignored)",
                    marker=dict(color="#495057", size=6))
    fig.add_scatter(x=samples[:, 0], y=samples[:, 1], mode="markers", name="new points sampled from p(x)",
                    marker=dict(color=HIGHLIGHT, size=6, symbol="x"))
    fig.add_scatter(x=mix.means[:, 0], y=mix.means[:, 1], mode="markers", name="component centres",
                    marker=dict(symbol="diamond", size=13, color="#ffd43b", line=dict(width=1.5, color="#212529")),
                    customdata=mix.weights, hovertemplate="centre (%{x:.2f}, %{y:.2f})<br>weight %{customdata:.2f}"
                    "<extra></extra>")
    fig.update_layout(xaxis=dict(title="feature 1", range=XLIM), yaxis=dict(title="feature 2", range=YLIM),
                      legend=dict(orientation="h", y=-0.25))
    return fig
