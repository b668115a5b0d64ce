"""Scatter plots: projections of vectors, decision regions and a fitted density (pure plotly)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from components.figures.base import ACCENT, HIGHLIGHT, MUTED
from components.figures.lines import GROUP_COLOURS
from engine import embeddings as emb
from engine import ml_basics as mb
from engine.text import html_escape

CLASS_COLOURS = ("#4c6ef5", "#f76707", "#2f9e44")
XLIM = (-5.5, 5.5)
YLIM = (-4.5, 5.5)


def projection_figure(proj: emb.Projection, labels: Sequence[str], groups: Sequence[str]) -> go.Figure:
    """Scatter of a projection (2D or 3D): the user's words labelled in colour, added neighbours small and grey.

    Neighbours carry text labels only while the plot stays readable (at most 40 points); hover always names them.
    """
    dims = proj.coords.shape[1]
    axis = ["PC1", "PC2", "PC3"] if proj.method == "pca" else ["t-SNE 1", "t-SNE 2", "t-SNE 3"]
    if proj.explained:
        axis = [f"{a} ({e:.0%} of variance)" for a, e in zip(axis, proj.explained)]
    mine = [i for i, g in enumerate(groups) if g == "your words"]
    others = [i for i, g in enumerate(groups) if g != "your words"]
    fig = go.Figure()
    for name, idx, colour, size in (("your words", mine, ACCENT, 9), ("added neighbours", others, MUTED, 6)):
        if not idx:
            continue
        labelled = name == "your words" or len(labels) <= 40
        c = proj.coords[idx]
        common = dict(
            mode="markers+text" if labelled else "markers",
            name=name,
            text=[labels[i] for i in idx],
            customdata=[groups[i] for i in idx],
            textposition="top center",
            hovertemplate="<b>%{text}</b><br>%{customdata}<extra></extra>",
            marker=dict(size=size, color=colour),
            textfont=dict(size=13 if name == "your words" else 10),
        )
        if dims == 3:
            fig.add_trace(go.Scatter3d(x=c[:, 0], y=c[:, 1], z=c[:, 2], **common))
        else:
            fig.add_trace(go.Scatter(x=c[:, 0], y=c[:, 1], **common))
    if dims == 3:
        fig.update_layout(scene=dict(xaxis_title=axis[0], yaxis_title=axis[1], zaxis_title=axis[2]), height=620)
    else:
        fig.update_layout(xaxis_title=axis[0], yaxis_title=axis[1], height=520)
    fig.update_layout(legend=dict(orientation="h", y=-0.15))
    return fig


def context_scatter(proj: emb.Projection, sentences: Sequence[emb.ContextSentence]) -> go.Figure:
    """The word's vectors at one layer, one point per sentence, coloured by meaning."""
    fig = go.Figure()
    for group, name in ((0, "meaning A"), (1, "meaning B")):
        idx = [i for i, s in enumerate(sentences) if s.group == group]
        if not idx:
            continue
        texts = [html_escape(f"{i + 1}. {sentences[i].text}", quote=False) for i in idx]
        fig.add_trace(
            go.Scatter(
                x=proj.coords[idx, 0],
                y=proj.coords[idx, 1],
                mode="markers+text",
                name=name,
                text=[f"{i + 1}" for i in idx],
                textposition="top center",
                customdata=texts,
                marker=dict(size=12, color=GROUP_COLOURS[group]),
                hovertemplate="%{customdata}<extra>" + name + "</extra>",
            )
        )
    labels = [f"PC{i + 1} ({e:.0%})" for i, e in enumerate(proj.explained or [0, 0])]
    fig.update_layout(xaxis_title=labels[0], yaxis_title=labels[1], height=380, legend=dict(orientation="h", y=-0.2))
    return fig


def classifier_figure(X: np.ndarray, y: np.ndarray, clf: mb.SoftmaxClassifier, probe: tuple[float, float]) -> go.Figure:
    """Decision regions of the classifier (shaded by confidence), the points, and the probe point."""
    xs, ys, pts = mb.grid(XLIM, YLIM, 90)
    p = clf.predict_proba(pts)  # [n*n, 3]
    region = p.argmax(axis=1).reshape(len(ys), len(xs))
    fig = go.Figure()
    scale = [[0.0, CLASS_COLOURS[0]], [0.33, CLASS_COLOURS[0]], [0.34, CLASS_COLOURS[1]], [0.66, CLASS_COLOURS[1]],
             [0.67, CLASS_COLOURS[2]], [1.0, CLASS_COLOURS[2]]]
    # Hover on the background shows p(class | x) at that spot; the boundaries are where the colour changes. The
    # probabilities travel as whole percents ([ny][nx][3] small integers, ~90 KB) and the hover template writes the
    # text in the browser: one ready-made hover string per cell made this chart 447 KB, the browser's slowest to load.
    percent = np.rint(p * 100).astype(int).reshape(len(ys), len(xs), len(mb.CLASS_NAMES)).tolist()
    names = " · ".join(f"{n}: %{{customdata[{k}]}}%" for k, n in enumerate(mb.CLASS_NAMES))
    fig.add_heatmap(x=xs, y=ys, z=region, colorscale=scale, zmin=0, zmax=2, opacity=0.28, showscale=False,
                    customdata=percent, hovertemplate=f"(%{{x:.1f}}, %{{y:.1f}})<br>{names}<extra></extra>",
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
