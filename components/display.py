"""Showing results: styled charts (built once per input and shared), tables with CSV downloads, chips, notices.

Figures themselves are built by the pure functions in :mod:`components.figures`; this module only puts them on the
page.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.figures.html import MAX_CHIPS, chips_html, token_piece_chips
from components.frame import presentation_mode
from engine import tokens as tok


def style_fig(fig: go.Figure, height: int | None = None, present: bool | None = None) -> go.Figure:
    """Apply the app's chart style (fonts scale up in presentation mode)."""
    present = presentation_mode() if present is None else present
    scale = 1.6 if present else 1.0
    fig.update_layout(
        font=dict(size=round(13 * scale)),
        uniformtext=dict(minsize=round(10 * scale), mode="show"),
        margin=dict(l=10, r=10, t=40 if fig.layout.title.text else 10, b=10),
        hoverlabel=dict(font_size=round(13 * scale)),
    )
    if scale != 1.0:
        # Streamlit's plotly theme sets axis and legend fonts itself: scale them explicitly.
        size = round(12 * scale)
        fig.update_xaxes(tickfont_size=size, title_font_size=size + 2)
        fig.update_yaxes(tickfont_size=size, title_font_size=size + 2)
        fig.update_layout(legend_font_size=size, title_font_size=size + 6)
    if height is not None:
        fig.update_layout(height=round(height * (1.25 if present else 1.0)))
    return fig


def show_chart(fig: go.Figure, key: str, height: int | None = None) -> None:
    """Show a styled plotly figure, full width, with the image download button in its toolbar."""
    _plot(style_fig(fig, height), key)


@st.cache_resource(show_spinner=False, max_entries=256)
def _styled_figure(inputs: tuple, height: int | None, present: bool, _build: Callable[[], go.Figure]) -> go.Figure:
    return style_fig(_build(), height, present)


def cached_chart(inputs: tuple, build: Callable[[], go.Figure], key: str, height: int | None = None) -> None:
    """Like :func:`show_chart`, but the styled figure is built once per distinct ``inputs`` and shared.

    Building and styling a plotly figure costs tens of milliseconds of Python per chart; a rerun that changes
    nothing a chart depends on (or 30 students on one example) then only serialises it.

    Args:
        inputs: Plain hashable values that determine the figure completely, starting with a name unique to the
            chart (e.g. ``("at_matrix", model_key, ids, layer, head)``). Two calls with equal inputs must build
            equal figures: include every value the builder reads.
        build: Makes the figure (called only on a cache miss; never mutate what it returns).
        key: The chart's element key.
        height: Height in pixels (scaled up in presentation mode).
    """
    _plot(_styled_figure(inputs, height, presentation_mode(), build), key)


def _plot(fig: go.Figure, key: str) -> None:
    st.plotly_chart(
        fig,
        width="stretch",
        key=key,
        config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": key, "scale": 2}},
    )


def csv_download(df: pd.DataFrame, filename: str, label: str = "Download CSV", key: str | None = None) -> None:
    """A download button for a table as CSV."""
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    st.download_button(
        label, buf.getvalue(), file_name=filename, mime="text/csv", icon=":material/download:", key=key or filename
    )


def illustration_note(text: str = "Illustration, not model output.") -> None:
    """Label a figure that is not computed from the model, so nobody mistakes it for live output."""
    st.caption(f":material/draw: {text}")


def empty_text_notice(what: str = "a prompt") -> None:
    """The standard message when a text box is empty."""
    st.info(f"Type {what} above to see the model's output.", icon=":material/edit:")


def show_error(err: Exception) -> None:
    """The one way a page shows input it cannot use (an :class:`engine.lm.InputError` or another ``ValueError``)."""
    st.warning(str(err), icon=":material/warning:")


def token_chips(pieces: Sequence[str], ids: Sequence[int] | None = None, **kwargs) -> None:
    """Token chips (:func:`components.figures.html.chips_html`) on the page: static HTML, no scripts."""
    st.html(chips_html(pieces, ids, **kwargs))


def tokenizer_chips(pieces: Sequence[tok.TokenPiece], show_markers: bool = False) -> None:
    """The tokenizer's chips, saying when only the first :data:`MAX_CHIPS` are drawn."""
    st.html(token_piece_chips(pieces, show_markers))
    if len(pieces) > MAX_CHIPS:
        st.caption(f"Showing the first {MAX_CHIPS:,} of {len(pieces):,} tokens; the counts above cover all of them.")
