"""Tokenization page pieces: cached tokenizer calls, token chips with markers, and the comparison charts.

Tokenizing is cheap, but 30 students typing the same example still share one cached result per text.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.charts import ACCENT, MUTED
from components.tokens import CHIP_COLOURS
from components.ui import DEFAULT_PROMPT, PROMPT_KEY, clean_text, esc
from engine import tokens as tok

#: Most chips drawn at once (the counts always cover the whole text).
MAX_CHIPS = 1500


def _lm(model_key: str):
    from components.model import load_model

    return load_model(model_key)


@st.cache_resource(show_spinner=False, max_entries=256)
def tokenize(model_key: str, text: str) -> tok.Tokenization:
    """:func:`engine.tokens.tokenize` on the given model, shared across sessions (never modify the result)."""
    return tok.tokenize(_lm(model_key), text)


@st.cache_resource(show_spinner=False, max_entries=4)
def vocabulary_summary(model_key: str) -> tok.VocabSummary:
    """:func:`engine.tokens.vocabulary_summary`, computed once per model."""
    return tok.vocabulary_summary(_lm(model_key))


@st.cache_resource(show_spinner=False, max_entries=8)
def compare_texts(model_key: str, items: tuple[tuple[str, str], ...]) -> list[tok.ComparisonRow]:
    """:func:`engine.tokens.compare_texts` (the first item is the reference)."""
    return tok.compare_texts(_lm(model_key), items)


# ------------------------------------------------------------------------------------------------ shared prompt
#: Where :func:`components.ui.prompt_input` keeps the prompt between pages (its ``_carry_<key>`` convention).
_CARRY = f"_carry_{PROMPT_KEY}"


def pending_shared_prompt() -> str:
    """The shared prompt as the box will show it, read before the box is drawn (session, then link, then carry)."""
    if PROMPT_KEY in st.session_state:
        return str(st.session_state[PROMPT_KEY])
    url = st.query_params.get(PROMPT_KEY)
    if url is not None:
        return str(url)
    return str(st.session_state.get(_CARRY, DEFAULT_PROMPT))


def set_shared_prompt(text: str) -> None:
    """Put ``text`` into the shared prompt from a widget callback (an example, a box switch): every page reads it.

    When the page then draws a different kind of box for the prompt (one line ↔ several), Streamlit would fill the
    new box from the link the page was opened with, i.e. the previous text; the link's value is dropped for this run
    so the new box shows ``text`` (the URL is updated from it right after).
    """
    st.session_state[PROMPT_KEY] = text
    st.session_state[_CARRY] = text
    try:  # internal to Streamlit 1.67 (as in components.ui._drop_link_param): if its shape changes, only this is lost
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        get_script_run_ctx().session_state._state.query_params._initial_query_params.pop(PROMPT_KEY, None)
    except Exception:  # noqa: BLE001
        pass


_TYPED = "_tok_live_typed"  # set by the one-line box's on_change: this rerun was caused by typing in it


def _typed() -> None:
    st.session_state[_TYPED] = True


def live_prompt_input(label: str, help: str | None = None) -> str:
    """A one-line box holding the shared prompt that updates as you type (bound to the URL like ``prompt_input``).

    It uses ``prompt_input``'s key and default, so a link's ``?prompt=`` fills it and what is typed here is the prompt
    every other page reads. The box is a different widget from the other pages' text area, so Streamlit does not
    hand it the value they left: on every rerun that typing in this box did not cause, the shared prompt is put into
    it explicitly (a rerun caused by typing keeps the typed value untouched, so no keystroke is overwritten).

    Returns:
        The cleaned text (notices about cleaning are shown under the box).
    """
    if not st.session_state.pop(_TYPED, False):
        st.session_state[PROMPT_KEY] = pending_shared_prompt()
    raw = st.text_input(
        label, value=DEFAULT_PROMPT, key=PROMPT_KEY, live=True, help=help, on_change=_typed, bind="query-params"
    )
    st.session_state[_CARRY] = raw
    text, notes = clean_text(raw)
    for note in notes:
        st.caption(f":material/info: {note}")
    return text


# ------------------------------------------------------------------------------------------------ chips
MARKERS = str.maketrans({" ": "·", "\n": "↵", "\t": "→"})


def marker_form(piece: tok.TokenPiece) -> str:
    """The vocabulary entry as stored (``Ġ`` = a leading space, ``Ċ`` = a newline, ``ĉ`` = a tab)."""
    return piece.raw


def readable_form(piece: tok.TokenPiece) -> str:
    """The token's text; blank tokens get visible markers so no chip is empty."""
    return piece.text if piece.text.strip() else piece.text.translate(MARKERS) or "∅"


def chip_title(piece: tok.TokenPiece) -> str:
    """Hover text of one chip: position, id, the vocabulary entry and its bytes."""
    kind = "control token" if piece.special else ("part of a character" if piece.partial else "token")
    return f"#{piece.index} · id {piece.token_id} · {kind} · entry {piece.raw!r} · {piece.n_bytes} byte(s)"


def chips_html(pieces: Sequence[tok.TokenPiece], show_markers: bool = False, limit: int = MAX_CHIPS) -> str:
    """HTML for the token chips: colour per position, id underneath, control tokens dark, byte pieces dashed.

    Everything user-derived is escaped; the HTML has no scripts.
    """
    out = ['<div class="llmx-chips" style="display:flex;flex-wrap:wrap;gap:4px;line-height:1.25">']
    for piece in pieces[:limit]:
        shown = marker_form(piece) if show_markers else readable_form(piece)
        if piece.special:
            style = "background:#343a40;color:#f8f9fa;"
        else:
            style = f"background:{CHIP_COLOURS[piece.index % len(CHIP_COLOURS)]};color:#1a1a1a;"
        if piece.partial:
            style += "border:1px dashed #495057;"
        style += "border-radius:6px;padding:3px 6px;font-family:ui-monospace,monospace;white-space:pre;"
        out.append(
            f'<span class="llmx-chip" style="{style}" title="{esc(chip_title(piece))}">{esc(shown)}'
            f'<div style="font-size:0.7em;opacity:0.75;text-align:center">{piece.token_id}</div></span>'
        )
    out.append("</div>")
    return "".join(out)


def show_chips(pieces: Sequence[tok.TokenPiece], show_markers: bool = False) -> None:
    """Render the chips (static HTML) and say when only the first :data:`MAX_CHIPS` are drawn."""
    st.html(chips_html(pieces, show_markers))
    if len(pieces) > MAX_CHIPS:
        st.caption(f"Showing the first {MAX_CHIPS:,} of {len(pieces):,} tokens; the counts above cover all of them.")


def tokens_table(pieces: Sequence[tok.TokenPiece]) -> pd.DataFrame:
    """One row per token: position, id, text, vocabulary entry, bytes, kind."""
    return pd.DataFrame(
        {
            "position": [p.index for p in pieces],
            "id": [p.token_id for p in pieces],
            "text": [p.text for p in pieces],
            "vocabulary entry": [p.raw for p in pieces],
            "bytes": [p.n_bytes for p in pieces],
            "kind": ["control" if p.special else ("byte piece" if p.partial else "text") for p in pieces],
        }
    )


# ------------------------------------------------------------------------------------------------ charts
def comparison_figure(rows: Sequence[tok.ComparisonRow]) -> go.Figure:
    """Tokens needed for the same sentence in each language, the reference language highlighted."""
    names = [r.name for r in rows]
    fig = go.Figure(
        go.Bar(
            x=[r.stats.tokens for r in rows],
            y=names,
            orientation="h",
            marker_color=[ACCENT if i == 0 else "#f59f00" for i in range(len(rows))],
            text=[f"{r.stats.tokens} tokens · {r.relative_tokens:.1f}×" for r in rows],
            textposition="auto",
            customdata=[[r.text, r.stats.characters, r.stats.chars_per_token] for r in rows],
            hovertemplate="<b>%{y}</b>: %{x} tokens<br>%{customdata[0]}<br>%{customdata[1]} characters, "
            "%{customdata[2]:.2f} characters per token<extra></extra>",
        )
    )
    fig.update_layout(
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(title="tokens for the same sentence", rangemode="tozero"),
        height=max(240, 34 * len(rows) + 80),
        showlegend=False,
    )
    return fig


def byte_length_figure(counts: dict[int, int], cap: int = 20) -> go.Figure:
    """How many vocabulary entries have each length in bytes (longer ones grouped in the last bar)."""
    xs = [str(n) for n in range(1, cap)] + [f"{cap}+"]
    ys = [counts.get(n, 0) for n in range(1, cap)] + [sum(v for k, v in counts.items() if k >= cap)]
    fig = go.Figure(
        go.Bar(
            x=xs,
            y=ys,
            marker_color=[ACCENT] * (len(xs) - 1) + [MUTED],
            hovertemplate="%{x} bytes: %{y:,} entries<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(title="length of the entry in bytes", type="category"),
        yaxis=dict(title="vocabulary entries"),
        height=300,
        showlegend=False,
    )
    return fig
