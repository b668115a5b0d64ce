"""Plain-text helpers shared by the engine and every view: the one home of each (no Streamlit, no plotly).

- :func:`first_line`: the answer part of a generated text.
- :func:`visible_whitespace`: newlines, tabs (and optionally spaces) as visible markers.
- :func:`token_label`: a token as a quoted, readable label.
- :func:`md_escape` / :func:`code_span` / :func:`html_escape`: user- or model-derived text made literal for Markdown
  (escaped, or as code) / HTML.
"""

from __future__ import annotations

import html
import re

_MARKERS = {"\n": "↵", "\r": "␍", "\t": "→"}
_SPACE_MARKERS = str.maketrans({**_MARKERS, " ": "·"})
_LINE_MARKERS = str.maketrans(_MARKERS)
#: Characters with a meaning in Streamlit Markdown (":" starts emoji and colour shortcodes).
_MD_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~$:")


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped (a model often keeps talking after the answer)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def visible_whitespace(text: str, spaces: bool = False) -> str:
    """Show newlines, carriage returns and tabs as ``↵ ␍ →`` (and spaces as ``·`` when ``spaces``)."""
    return text.translate(_SPACE_MARKERS if spaces else _LINE_MARKERS)


def token_label(piece: str) -> str:
    """A token as a readable label: quoted (so a leading space shows), line breaks and tabs as markers."""
    return "'" + visible_whitespace(piece) + "'"


def md_escape(text: str) -> str:
    """Backslash-escape Markdown syntax so a token such as ``'**'`` or a typed ``[link](…)`` shows as typed.

    Line breaks and tabs become markers first: inside a Markdown sentence they would break the layout.
    """
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in visible_whitespace(text))


def html_escape(text: object, quote: bool = True) -> str:
    """HTML-escape anything user- or model-derived before it goes into HTML: quotes too (for attributes), unless
    ``quote`` is off (plotly labels, which render a few tags but show entities for quotes literally)."""
    return html.escape(str(text), quote=quote)


def code_span(text: str) -> str:
    """Show user- or model-derived text literally inside Markdown (no formatting, links, math or HTML)."""
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in re.findall("`+", text)) + 1)  # longer than any run of backticks inside
    return f"{fence} {text} {fence}"
