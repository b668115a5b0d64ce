"""What every figure shares: the palette and readable, unique token labels (pure: no Streamlit)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.text import token_label, visible_whitespace

__all__ = ["ACCENT", "CUT_K", "CUT_P", "HIGHLIGHT", "MUTED", "axis_labels", "short_label", "token_label",
           "token_labels", "unique_labels"]


ACCENT = "#4c6ef5"
MUTED = "#adb5bd"
HIGHLIGHT = "#f76707"
CUT_K = "#e03131"  # removed by top-k
CUT_P = "#f59f00"  # removed by top-p


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Make category labels unique (plotly merges equal categories) by adding invisible suffixes."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label + "\u200b" * n)
    return out


def token_labels(pieces: Sequence[str]) -> list[str]:
    """:func:`token_label` of each piece, made unique for a category axis."""
    return unique_labels([token_label(p) for p in pieces])


def axis_labels(tokens: Sequence[str], numbered: bool = True) -> list[str]:
    """Unique, readable axis labels: position and quoted token (spaces and newlines visible)."""
    labels = [f"{i}: {token_label(t)}" if numbered else token_label(t) for i, t in enumerate(tokens)]
    return unique_labels(labels)


def short_label(text: str, limit: int = 9) -> str:
    """A quoted token cut to ``limit`` characters (for text inside heatmap cells)."""
    shown = "'" + visible_whitespace(text) + "'"
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
