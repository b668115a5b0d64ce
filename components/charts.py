"""Reusable plotly figures. They take plain lists/arrays and return figures, so pages stay thin."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

ACCENT = "#4c6ef5"
MUTED = "#adb5bd"
HIGHLIGHT = "#f76707"


def token_label(piece: str) -> str:
    """A token as a readable axis label: quoted (so a leading space shows), newlines and tabs as ↵ and →."""
    return "'" + piece.replace("\n", "↵").replace("\t", "→") + "'"


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Make category labels unique (plotly merges equal categories) by adding invisible suffixes."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label + "\u200b" * n)
    return out


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
