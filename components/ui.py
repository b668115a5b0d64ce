"""Shared page frame pieces: presentation mode, the shared prompt, safe inputs, chart display and downloads."""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

PRESENT_KEY = "present"
PROMPT_KEY = "prompt"
DEFAULT_PROMPT = "The capital of France is"
#: Longest text a page accepts in one box (bounded run time; the page says so when it cuts).
MAX_TEXT_CHARS = 4000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def presentation_mode() -> bool:
    """Whether the large-text classroom layout is on (sidebar toggle, URL ``?present=true``)."""
    return bool(st.session_state.get(PRESENT_KEY, False))


def font_scale() -> float:
    """Multiplier for chart fonts: larger in presentation mode so the back row can read them."""
    return 1.6 if presentation_mode() else 1.0


def apply_presentation_css() -> None:
    """Larger text, higher contrast and less chrome when presentation mode is on."""
    if not presentation_mode():
        return
    st.html(
        """<style>
        html { font-size: 20px; }
        [data-testid="stMain"] [data-testid="stMarkdownContainer"] p,
        [data-testid="stMain"] [data-testid="stMarkdownContainer"] li { font-size: 1.35rem; line-height: 1.5; }
        [data-testid="stMain"] h1 { font-size: 3.2rem; }
        [data-testid="stMain"] h2 { font-size: 2.4rem; }
        [data-testid="stMain"] h3 { font-size: 1.9rem; }
        [data-testid="stMain"] [data-testid="stWidgetLabel"] p { font-size: 1.3rem; font-weight: 600; }
        [data-testid="stMain"] textarea, [data-testid="stMain"] input { font-size: 1.35rem !important; }
        [data-testid="stMain"] [data-testid="stCaptionContainer"],
        [data-testid="stMain"] [data-testid="stCaptionContainer"] p { font-size: 1.15rem; opacity: 0.95; }
        [data-testid="stMain"] [data-testid="stMetricValue"] { font-size: 2.6rem; }
        [data-testid="stMain"] [data-testid="stDataFrame"] { font-size: 1.2rem; }
        [data-testid="stHeader"], [data-testid="stToolbar"], footer { display: none; }
        .block-container { padding-top: 1rem; max-width: 100%; }
        .llmx-chip { font-size: 1.4rem !important; }
        </style>"""
    )


def clean_text(text: str | None, limit: int = MAX_TEXT_CHARS) -> tuple[str, list[str]]:
    """Make user text safe to tokenize and say what was changed.

    Removes control characters (NUL and friends, keeping tab and newline) and cuts overly long text.

    Returns:
        The cleaned text and a list of short notices for the page.
    """
    notes: list[str] = []
    text = text or ""
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
        notes.append("Control characters were removed from the text.")
    if len(text) > limit:
        text = text[:limit]
        notes.append(f"The text was cut to its first {limit:,} characters to keep the page fast.")
    return text, notes


def prompt_input(
    label: str = "Prompt",
    key: str = PROMPT_KEY,
    default: str = DEFAULT_PROMPT,
    height: int | None = 80,
    help: str | None = None,
) -> str:
    """A text box bound to the URL. With the default key it is the prompt carried from page to page.

    Returns:
        The cleaned text (notices about cleaning are shown under the box).
    """
    # The widget's default stays constant so the URL only carries edited values. A bound widget that mounts on a
    # new page with no URL parameter would fall back to that default, so restore the session's last value first:
    # that is how one prompt travels from page to page.
    # The box on each page is a new widget: when the page changed since the box was last drawn, seed it with the
    # carried value (a value in this page's own link still wins when the widget mounts).
    carry, where = f"_carry_{key}", f"_carry_page_{key}"
    here = st.session_state.get("_current_page")
    if key not in st.session_state or (carry in st.session_state and st.session_state.get(where) != here):
        st.session_state[key] = st.session_state.get(carry, default)
    raw = st.text_area(label, value=default, key=key, height=height, help=help, bind="query-params")
    st.session_state[carry] = raw
    st.session_state[where] = here
    text, notes = clean_text(raw)
    for note in notes:
        st.caption(f":material/info: {note}")
    return text


def empty_text_notice(what: str = "a prompt") -> None:
    """The standard message when a text box is empty."""
    st.info(f"Type {what} above to see the model's output.", icon=":material/edit:")


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


def esc(text: object) -> str:
    """HTML-escape anything user- or model-derived before it goes into HTML."""
    return html.escape(str(text), quote=True)


def illustration_note(text: str = "Illustration, not model output.") -> None:
    """Label a figure that is not computed from the model, so nobody mistakes it for live output."""
    st.caption(f":material/draw: {text}")


def current_view_url() -> str:
    """The URL of this page with every bound widget's value, so the link reopens exactly this view."""
    from urllib.parse import urlencode

    base = st.context.url or ""
    params = {k: v for k, v in st.query_params.to_dict().items() if v not in ("", None)}
    return base + ("?" + urlencode(params) if params else "")


def share_link_box() -> None:
    """A sidebar box with the link to this exact view and a copy button (the code block's copy icon)."""
    with st.sidebar.popover("Share this view", icon=":material/link:", width="stretch"):
        st.caption("This link reopens the page with the same prompt and settings. Use the copy icon.")
        st.code(current_view_url(), language=None, wrap_lines=True)


_LINK_PARAMS = "_llmx_link_params"


def _non_finite_number(value: str) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _drop_link_param(key: str) -> None:
    """Forget one parameter of the link, both in the URL and in the values widgets are seeded from."""
    del st.query_params[key]
    try:  # the seeding copy is internal to Streamlit: if its shape changes, only this workaround is lost
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        get_script_run_ctx().session_state._state.query_params._initial_query_params.pop(key, None)
    except Exception:  # noqa: BLE001
        pass


def remember_link_params() -> None:
    """Before the page runs: remember the query parameters a session arrived with (its shared link).

    Values that parse as non-finite numbers (``inf``, ``1e999``, ``nan``) are removed first: Streamlit 1.67's bound
    integer inputs crash on them (OverflowError) instead of ignoring them like other invalid values.
    """
    if _LINK_PARAMS not in st.session_state:
        st.session_state[_LINK_PARAMS] = st.query_params.to_dict()
        for key, value in st.session_state[_LINK_PARAMS].items():
            if _non_finite_number(value):
                _drop_link_param(key)


def notice_rejected_link_params() -> None:
    """After the page ran: widgets drop URL values they cannot use (wrong type, out of range, unknown option).

    Say so once, briefly, so a teacher whose link was mangled knows the page fell back to its defaults.
    """
    arrived = st.session_state.get(_LINK_PARAMS)
    if not arrived:
        return
    st.session_state[_LINK_PARAMS] = {}
    now = st.query_params.to_dict()
    # A value a widget accepted stays in the URL unchanged; one it rejected or corrected is gone or different.
    rejected = sorted(k for k, v in arrived.items() if now.get(k) != v)
    if rejected:
        names = ", ".join(k[:30] for k in rejected[:5])
        st.toast(
            f"Some settings in the link could not be used, so the page shows its defaults for them: {names}.",
            icon=":material/link_off:",
        )


def fast_generation_toggle(key: str) -> bool:
    """The switch between the fast 4-bit generation loop and the exact float32 model, with its honest label."""
    return st.toggle(
        "Fast 4-bit mode",
        value=True,
        key=key,
        bind="query-params",
        help="On: the weights are rounded to 4 bits per number (in groups of 32, as in the model file this app ships) "
        "and multiplied in bfloat16, like llama.cpp does: about twice as fast on a CPU, but the numbers differ "
        "slightly, so a long text can take another turn after a few tokens. Off: the exact float32 model, the one "
        "every probability on these pages comes from.",
    )
