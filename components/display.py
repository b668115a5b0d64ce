"""Showing results: styled charts (built once per input and shared), tables with CSV downloads, chips, notices.

Figures themselves are built by the pure functions in :mod:`components.figures`; this module only puts them on the
page.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.figures.html import MAX_CHIPS, chips_html, token_piece_chips
from components.figures.margins import label_margins
from components.frame import presentation_mode
from engine import tokens as tok
from engine.generation import StreamTally
from engine.jobs import BackgroundJob


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
    # Margins from the labels where they are known here: the browser then does not measure and redraw the chart.
    tick_px = round(12 * scale)  # the axis fonts: ticks 12 px and titles 14 px, scaled as above
    margins = label_margins(fig, tick_px, tick_px + 2)
    if margins is not None:
        fig.update_layout(margin=margins)
        fig.update_xaxes(automargin=False)
        fig.update_yaxes(automargin=False)
    return fig


#: Styled figures kept by :func:`show_chart`, by content; bounded by the bytes of their content (not by count, so a
#: few large heatmaps cannot hold hundreds of megabytes).
_STYLED_MAX_BYTES = 16 * 2**20
_styled: OrderedDict[bytes, tuple[go.Figure, int]] = OrderedDict()
_styled_bytes = 0
_styled_lock = threading.Lock()


def _content_key(fig: go.Figure, height: int | None, present: bool) -> tuple[bytes, int] | None:
    """A digest of everything a figure shows (its traces and layout as plotly holds them), or ``None`` when it cannot
    be taken (animation frames, values pickle cannot handle): the figure is then styled on every run."""
    if fig._frame_objs:
        return None
    try:
        raw = pickle.dumps((fig._data, fig._layout, height, present), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an unusual value in a figure only costs the shortcut
        return None
    return hashlib.blake2b(raw, digest_size=20).digest(), len(raw)


def _styled_once(fig: go.Figure, height: int | None) -> go.Figure:
    """``style_fig(fig, height)``, or the figure styled the same way earlier by any session when ``fig`` shows the same
    content (plotly's validated ``update_layout`` costs several milliseconds of Python per chart and run; hashing the
    figure costs a few hundredths of one)."""
    global _styled_bytes
    present = presentation_mode()
    key = _content_key(fig, height, present)
    if key is None:
        return style_fig(fig, height, present)
    digest, size = key
    with _styled_lock:
        hit = _styled.get(digest)
        if hit is not None:
            _styled.move_to_end(digest)
            return hit[0]
    styled = style_fig(fig, height, present)  # never mutated afterwards: st.plotly_chart serialises a copy
    if size <= _STYLED_MAX_BYTES // 4:
        with _styled_lock:
            if digest not in _styled:
                _styled[digest] = (styled, size)
                _styled_bytes += size
            while _styled_bytes > _STYLED_MAX_BYTES:
                _styled_bytes -= _styled.popitem(last=False)[1][1]
    return styled


def show_chart(fig: go.Figure, key: str, height: int | None = None) -> None:
    """Show a styled plotly figure, full width, with the image download button in its toolbar.

    The styling is done once per distinct figure content for the whole server (see :func:`_styled_once`): a rerun or
    another session showing the same chart skips it. Do not change ``fig`` after passing it here.
    """
    _plot(_styled_once(fig, height), key)


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


def _sent_once(fig: go.Figure) -> go.Figure:
    """``fig`` with its ``to_dict()`` computed once and kept.

    ``st.plotly_chart`` turns the figure into a dict on every run (plotly deep-copies every trace and base64-encodes
    its arrays) before serialising it: most of a rerun's Python on a page of charts, for a figure that is shared and
    never changes. Streamlit only reads that dict, so one copy serves every later run and session.
    """
    if "to_dict" not in fig.__dict__:
        as_dict = fig.to_dict()
        fig.to_dict = lambda: as_dict  # plotly allows setting an existing attribute on the instance
    return fig


def _plot(fig: go.Figure, key: str) -> None:
    st.plotly_chart(
        _sent_once(fig),
        width="stretch",
        key=key,
        config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": key, "scale": 2}},
    )


@contextlib.contextmanager
def folded(label: str, key: str, icon: str | None = None) -> Iterator[bool]:
    """A collapsed section whose content is only computed and sent while it is open.

    A plain ``st.expander`` sends its content even when closed, and the browser draws it (charts, tables, bertviz's
    iframe) on every visit although nobody sees it. This one reruns the page when it is opened or closed, and the
    page draws its content only when it is open. Its state lives in the URL (``?<key>=true``), so a shared link or
    a reconnect opens it again.

    Usage: ``with folded(label, key) as is_open:`` then ``if is_open:`` around the content (a ``with`` block cannot
    skip its own body).

    Yields:
        Whether the section is open in this run.
    """
    box = st.expander(label, icon=icon, key=key, on_change="rerun", bind="query-params")
    with box:
        yield bool(box.open)


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


def watch_job(
    job: BackgroundJob,
    describe: Callable[[BackgroundJob], str],
    curve: Callable[[list[float]], go.Figure] | None = None,
    key: str = "job",
    poll_s: float = 0.5,
    until: Callable[[BackgroundJob], bool] | None = None,
) -> None:
    """Draw a running :class:`engine.jobs.BackgroundJob`'s progress in this session until it ends (or ``until(job)``).

    The work itself runs once in its own thread (shared by every session for a server-wide run); each session only
    draws: a progress bar labelled by ``describe(job)`` and, when ``curve`` is given, a live chart of ``job.values``
    redrawn whenever a new value arrived. Both are removed when the job ends (the page then shows the result).

    Args:
        job: The job to watch (started by the caller).
        describe: The bar's label, e.g. ``lambda j: f"step {j.step} of {j.total}"``.
        curve: Builds the live chart from the values reported so far.
        key: Prefix of the live chart's element keys.
        poll_s: Seconds between redraws.
        until: Stop watching early once this is true (e.g. a load's first look is ready).
    """
    bar = st.progress(0.0, text=describe(job))
    live = st.empty() if curve is not None else None
    shown, drawn = None, 0
    while not job.done and not (until is not None and until(job)):
        text = describe(job)
        if text != shown:
            bar.progress(job.fraction, text=text)
            shown = text
        n = len(job.values)
        if live is not None and n and n != drawn:  # a curve once there is a value to draw
            with live.container():
                show_chart(curve(job.values[:n]), key=f"{key}_live_{n}")
            drawn = n
        job.wait(poll_s if until is None else min(poll_s, 0.1))  # returns the moment the job ends
    bar.empty()
    if live is not None:
        live.empty()


#: Redraws per second while text streams in: the eye sees smooth text, and Streamlit sends a few messages a second
#: instead of one per token (each message re-sends the whole element: per-token updates slow generation down).
STREAM_FPS = 12


def stream_text(steps: Iterable, draw: Callable[[StreamTally], None], fps: float = STREAM_FPS) -> StreamTally:
    """Consume a generation stream (:meth:`engine.lm.LanguageModel.generate_stream`) and redraw at a steady frame rate.

    Args:
        steps: ``GenStep`` items as the model produces them.
        draw: Puts the text so far on the page (e.g. ``lambda t: box.html(...)``); called at most ``fps`` times a
            second and once more at the end.
        fps: Redraws per second.

    Returns:
        The final :class:`engine.generation.StreamTally` (text, tokens, seconds, time to first token).
    """
    tally, last, period = StreamTally(), 0.0, 1.0 / max(fps, 1e-3)
    for step in steps:
        tally.add(step)
        now = time.perf_counter()
        if tally.tokens == 1 or now - last >= period:  # the first token at once: time to first token is visible
            draw(tally)
            last = now
    draw(tally)
    return tally
