"""Token chips: each token as a coloured box with its id. Everything is HTML-escaped."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from components.ui import esc

# Pastel colours that keep dark text readable in light and dark themes.
CHIP_COLOURS = ("#ffd8a8", "#b2f2bb", "#a5d8ff", "#eebefa", "#ffec99", "#c3fae8", "#ffc9c9", "#d0bfff")


def visible_whitespace(text: str) -> str:
    """Show spaces, newlines and tabs as visible markers (·, ↵, →)."""
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "→")


def chips_html(
    pieces: Sequence[str],
    ids: Sequence[int] | None = None,
    show_whitespace: bool = False,
    dimmed: Sequence[bool] | None = None,
    titles: Sequence[str] | None = None,
) -> str:
    """HTML for a row of token chips.

    Args:
        pieces: Text of each token.
        ids: Token ids shown under each chip.
        show_whitespace: Replace spaces/newlines with visible markers.
        dimmed: Per-chip flag to grey a chip out (e.g. outside the context window).
        titles: Per-chip hover text.
    """
    out = ['<div class="llmx-chips" style="display:flex;flex-wrap:wrap;gap:4px;line-height:1.2">']
    for i, piece in enumerate(pieces):
        shown = visible_whitespace(piece) if show_whitespace else piece
        shown = shown if shown.strip() else ("·" * len(piece) if piece else "∅")
        colour = CHIP_COLOURS[i % len(CHIP_COLOURS)]
        dim = bool(dimmed[i]) if dimmed is not None else False
        style = (
            f"background:{'#dee2e6' if dim else colour};color:{'#868e96' if dim else '#1a1a1a'};"
            "border-radius:6px;padding:3px 6px;font-family:ui-monospace,monospace;white-space:pre;"
            + ("text-decoration:line-through;" if dim else "")
        )
        title = esc(titles[i]) if titles is not None else ""
        id_line = (
            f'<div style="font-size:0.7em;opacity:0.75;text-align:center">{int(ids[i])}</div>' if ids is not None else ""
        )
        out.append(f'<span class="llmx-chip" style="{style}" title="{title}">{esc(shown)}{id_line}</span>')
    out.append("</div>")
    return "".join(out)


def token_chips(pieces: Sequence[str], ids: Sequence[int] | None = None, **kwargs) -> None:
    """Render :func:`chips_html` on the page (static HTML, no scripts)."""
    st.html(chips_html(pieces, ids, **kwargs))
