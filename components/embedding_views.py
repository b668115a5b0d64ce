"""Embeddings page pieces: cached computations keyed by plain values, and the plotly figures.

Every cached function takes ``model_key`` and plain inputs, so identical requests from different sessions are computed
once, and widgets that only change the view (the layer slider) re-shape a cached result instead of re-running the
model. Results are shared: never modify them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from components.charts import ACCENT, HIGHLIGHT, MUTED, token_label, unique_labels
from engine import embeddings as emb

GROUP_COLOURS = ("#4c6ef5", "#f76707")


def _lm(model_key: str):
    from components.model import load_model

    return load_model(model_key)


# ------------------------------------------------------------------------------------------------ cached computations
@st.cache_resource(show_spinner=False, max_entries=256)
def word_vector(model_key: str, word: str, leading_space: bool) -> emb.WordVector:
    """:func:`engine.embeddings.word_vector` (cached)."""
    return emb.word_vector(_lm(model_key), word, leading_space)


@st.cache_resource(show_spinner=False, max_entries=128)
def neighbours(model_key: str, word: str, leading_space: bool, k: int) -> list[emb.Neighbour]:
    """Nearest vocabulary entries to a word's vector, the word's own tokens left out."""
    wv = word_vector(model_key, word, leading_space)
    return emb.nearest_tokens(_lm(model_key), wv.vector, k, exclude_ids=wv.ids)


@dataclass(frozen=True)
class WordMap:
    """A word list's vectors, their similarities and a projection (optionally with neighbours added).

    Attributes:
        words: The user's words as vectors.
        sims: ``[N, N]`` cosine similarity between the user's words.
        labels: One label per projected point (user words first, then neighbours).
        groups: Per point, ``"your words"`` or ``"neighbour of …"``.
        projection: The 2D/3D coordinates of every point.
    """

    words: list[emb.WordVector]
    sims: np.ndarray
    labels: list[str]
    groups: list[str]
    projection: emb.Projection


@st.cache_resource(show_spinner=False, max_entries=64)
def word_map(
    model_key: str, words: tuple[str, ...], leading_space: bool, method: str, dims: int, extra: int
) -> WordMap:
    """Vectors, cosine matrix and projection for a word list.

    Args:
        model_key: The model.
        words: The user's words (non-empty).
        leading_space: Embed the mid-sentence form of each word.
        method: ``"pca"`` or ``"tsne"``.
        dims: 2 or 3.
        extra: Add each word's ``extra`` nearest vocabulary entries to the projection (0 = none).

    Raises:
        ValueError: When the projection cannot be made (too few points); the message is ready to show.
    """
    lm = _lm(model_key)
    vectors = [word_vector(model_key, w, leading_space) for w in words]
    stacked = torch.stack([v.vector for v in vectors])  # [N, D]
    sims = emb.cosine_matrix(stacked).numpy()
    labels = [v.label for v in vectors]
    groups = ["your words"] * len(vectors)
    points = [stacked]
    if extra > 0:
        taken = {i for v in vectors for i in v.ids}
        table = emb.embedding_matrix(lm)
        for v in vectors:
            for n in emb.nearest_tokens(lm, v.vector, extra, exclude_ids=sorted(taken), exclude_words=words):
                taken.add(n.token_id)
                labels.append(token_label(n.text))
                groups.append(f"near {v.word}")
                points.append(table[n.token_id][None, :])
    projection = emb.project(torch.cat(points), method=method, dims=dims)
    return WordMap(words=vectors, sims=sims, labels=labels, groups=groups, projection=projection)


@st.cache_resource(show_spinner=False, max_entries=64)
def analogy(model_key: str, a: str, b: str, c: str, expected: str, leading_space: bool) -> emb.AnalogyResult:
    """:func:`engine.embeddings.analogy` (cached)."""
    return emb.analogy(_lm(model_key), a, b, c, k=10, expected=expected or None, leading_space=leading_space)


@st.cache_resource(show_spinner=False, max_entries=32)
def contextual(
    model_key: str, word: str, sentences_a: tuple[str, ...], sentences_b: tuple[str, ...]
) -> emb.ContextualResult:
    """:func:`engine.embeddings.contextual_vectors`: one forward per sentence, then every layer is a slice."""
    return emb.contextual_vectors(_lm(model_key), word, sentences_a, sentences_b)


@st.cache_resource(show_spinner=False, max_entries=256)
def context_projection(model_key: str, word: str, a: tuple[str, ...], b: tuple[str, ...], layer: int) -> emb.Projection:
    """2D PCA of the word's vectors at one layer (no model call: a slice of the cached result)."""
    result = contextual(model_key, word, a, b)
    return emb.project(result.vectors[layer], method="pca", dims=2)


#: Most tokens of the shared prompt compared on the page (a heatmap beyond this is unreadable).
MAX_PROMPT_TOKENS = 48


@dataclass(frozen=True)
class PromptVectors:
    """The first tokens of a prompt as vectors after every layer, compared with each other.

    Attributes:
        ids: The token ids compared (at most :data:`MAX_PROMPT_TOKENS`).
        total: How many tokens the whole prompt has.
        pieces: Readable text of each compared token.
        sims: ``[L+1, T, T]`` cosine similarity between the tokens' vectors at each layer (entry 0 = the lookup table
            rows, the last entry is after the final norm).
        norms: ``[L+1, T]`` length of each token's vector at each layer.
    """

    ids: tuple[int, ...]
    total: int
    pieces: list[str]
    sims: np.ndarray
    norms: np.ndarray


@st.cache_resource(show_spinner=False, max_entries=64)
def _prompt_vectors(model_key: str, ids: tuple[int, ...], total: int) -> PromptVectors:
    lm = _lm(model_key)
    # A left-to-right model: the first T tokens' vectors do not depend on anything after them, so running only the
    # tokens shown gives exactly the vectors a run over the whole prompt would.
    hidden = lm.forward(list(ids), hidden_states=True).hidden_states.float()  # [L+1, T, D]
    sims = torch.stack([emb.cosine_matrix(h) for h in hidden]).numpy()  # [L+1, T, T]
    norms = hidden.norm(dim=-1).numpy()  # [L+1, T]
    return PromptVectors(ids=ids, total=total, pieces=lm.token_texts(ids), sims=sims, norms=norms)


def prompt_vectors(model_key: str, text: str) -> PromptVectors:
    """The first :data:`MAX_PROMPT_TOKENS` tokens of ``text`` after every layer: one cached forward pass.

    Every layer is then a slice of the cached result, so choosing a layer never runs the model again.

    Raises:
        ValueError: If the text has no tokens; the message is ready to show.
    """
    ids = _prompt_ids(model_key, text)
    if not ids:
        raise ValueError("The prompt has no tokens.")
    return _prompt_vectors(model_key, ids[:MAX_PROMPT_TOKENS], len(ids))


@st.cache_resource(show_spinner=False, max_entries=256)
def _prompt_ids(model_key: str, text: str) -> tuple[int, ...]:
    return tuple(_lm(model_key).encode(text))


def repeated_token(pv: PromptVectors) -> tuple[int, int] | None:
    """The first two positions holding the same token id, or ``None``."""
    seen: dict[int, int] = {}
    for pos, token_id in enumerate(pv.ids):
        if token_id in seen:
            return seen[token_id], pos
        seen[token_id] = pos
    return None


def most_similar_pair(
    pv: PromptVectors, layer: int, skip: set[int] | frozenset[int] = frozenset()
) -> tuple[int, int] | None:
    """Positions ``(i, j)``, ``i < j``, of the two different tokens whose vectors at ``layer`` are most alike.

    Pairs of the same token id and positions in ``skip`` are left out; ``None`` when no pair is left.
    """
    ids = np.asarray(pv.ids)
    allowed = ids[:, None] != ids[None, :]  # [T, T] different tokens (this also drops the diagonal)
    keep = np.array([i not in skip for i in range(len(ids))])
    allowed &= keep[:, None] & keep[None, :]
    allowed &= np.triu(np.ones_like(allowed), k=1).astype(bool)
    if not allowed.any():
        return None
    sims = np.where(allowed, pv.sims[layer], -np.inf)
    i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
    return int(i), int(j)


def long_vectors(pv: PromptVectors, layer: int, factor: float = 3.0) -> list[tuple[int, float]]:
    """Positions whose vector at ``layer`` is more than ``factor`` × the median length, with that ratio."""
    norms = pv.norms[layer]
    median = float(np.median(norms)) or 1.0
    return [(int(i), float(norms[i] / median)) for i in np.flatnonzero(norms > factor * median)]


# ------------------------------------------------------------------------------------------------ figures
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
        height=max(320, 26 * n + 160),
    )
    return fig


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


def neighbour_figure(items: Sequence[emb.Neighbour], highlight: str | None = None) -> go.Figure:
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


def layer_curves_figure(curves: dict[str, np.ndarray], layer: int) -> go.Figure:
    """Mean similarity per layer within each meaning and across them; a marker at the selected layer."""
    colours = {"within A": GROUP_COLOURS[0], "within B": GROUP_COLOURS[1], "across A and B": MUTED}
    fig = go.Figure()
    for name, ys in curves.items():
        fig.add_trace(
            go.Scatter(
                x=list(range(len(ys))),
                y=ys,
                mode="lines+markers",
                name=name,
                line=dict(color=colours.get(name), width=3 if name.startswith("across") else 2),
                hovertemplate=name + " · layer %{x}: %{y:.3f}<extra></extra>",
            )
        )
    fig.add_vline(x=layer, line_dash="dot", line_color="#495057")
    fig.update_layout(
        xaxis=dict(title="layer (0 = the embedding lookup)", dtick=5),
        yaxis=dict(title="mean cosine similarity"),
        height=380,
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def context_scatter(proj: emb.Projection, sentences: Sequence[emb.ContextSentence]) -> go.Figure:
    """The word's vectors at one layer, one point per sentence, coloured by meaning."""
    fig = go.Figure()
    for group, name in ((0, "meaning A"), (1, "meaning B")):
        idx = [i for i, s in enumerate(sentences) if s.group == group]
        if not idx:
            continue
        texts = [html.escape(f"{i + 1}. {sentences[i].text}", quote=False) for i in idx]
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
