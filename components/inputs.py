"""Shared input widgets: the prompt box (shared between pages), safe text cleaning, and other common controls.

Every box returns plain, cleaned values (the page then passes them to :mod:`components.caches`); a notice is shown
under the box when cleaning changed something.
"""

from __future__ import annotations

import re

import streamlit as st

from components.frame import (
    DEFAULT_PROMPT,
    PROMPT_KEY,
    carry_text,
    keep_in_link,
    pending_shared_prompt,
    seed_text_box,
)

__all__ = ["DEFAULT_PROMPT", "MAX_TEXT_CHARS", "PROMPT_KEY", "clean_text", "cleaned", "fast_generation_toggle",
           "live_prompt_input", "prompt_input"]


#: Longest text a page accepts in one box (bounded run time; the page says so when it cuts).
MAX_TEXT_CHARS = 4000


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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



def cleaned(raw: str | None, limit: int = MAX_TEXT_CHARS, one_line: bool = False, quiet: bool = False) -> str:
    """:func:`clean_text` for a box the page draws itself: notices shown under it (unless ``quiet``).

    ``one_line`` collapses every run of whitespace into one space (single words and short phrases).
    """
    text, notes = clean_text(raw, limit)
    if not quiet:
        for note in notes:
            st.caption(f":material/info: {note}")
    return " ".join(text.split()) if one_line else text


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
    seed_text_box(key, default)
    raw = st.text_area(label, value=default, key=key, height=height, help=help, bind="query-params")
    carry_text(key, raw)
    keep_in_link(key, raw, default)
    return cleaned(raw)


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
    carry_text(PROMPT_KEY, raw)
    keep_in_link(PROMPT_KEY, raw, DEFAULT_PROMPT)
    return cleaned(raw)


def fast_generation_toggle(key: str) -> bool:
    """The switch between the fast 4-bit generation loop and the float32 path every number comes from."""
    return st.toggle(
        "Fast 4-bit mode",
        value=True,
        key=key,
        bind="query-params",
        help="On: the weights are rounded to 4 bits per number (in groups of 32, as in the model file this app ships) "
        "and multiplied in bfloat16, like llama.cpp does: about twice as fast on a CPU, but the numbers differ "
        "slightly, so a long text can take another turn after a few tokens. Off: float32 arithmetic on the same "
        "4-bit weights unpacked to float32, the path every probability on these pages comes from.",
    )

