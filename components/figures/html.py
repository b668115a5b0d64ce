"""Static HTML builders (token chips, highlighted text): pure strings, everything user-derived escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine import tokens as tok
from engine.evaluation import BleuResult
from engine.scoring import TextScore
from engine.text import html_escape, visible_whitespace

# --- token chips (one builder for every row of coloured boxes) ---
#: Pastel colours that keep dark text readable in light and dark themes.
CHIP_COLOURS = ("#ffd8a8", "#b2f2bb", "#a5d8ff", "#eebefa", "#ffec99", "#c3fae8", "#ffc9c9", "#d0bfff")
#: Most chips drawn at once (counts on the page always cover the whole text).
MAX_CHIPS = 1500


def chip(text: str, background: str, colour: str = "#1a1a1a", title: str = "", sub: object | None = None,
         radius: int = 6, padding: str = "3px 6px", pre: bool = True, strike: bool = False, dashed: bool = False) -> str:
    """One chip: ``text`` in a coloured box, an optional small line under it (a token id), hover ``title``.

    ``text``, ``title`` and ``sub`` are escaped here; the style values are the caller's constants.
    """
    style = f"background:{background};color:{colour};"
    if dashed:
        style += "border:1px dashed #495057;"
    style += f"border-radius:{radius}px;padding:{padding};font-family:ui-monospace,monospace;"
    style += ("white-space:pre;" if pre else "") + ("text-decoration:line-through;" if strike else "")
    sub_line = (f'<div style="font-size:0.7em;opacity:0.75;text-align:center">{html_escape(sub)}</div>'
                if sub is not None else "")
    return f'<span class="llmx-chip" style="{style}" title="{html_escape(title)}">{html_escape(text)}{sub_line}</span>'


def chip_row(chips: Iterable[str], gap: int = 4, line_height: float = 1.2, extra: str = "") -> str:
    """Chips side by side, wrapping like text."""
    return (f'<div class="llmx-chips" style="display:flex;flex-wrap:wrap;gap:{gap}px;line-height:{line_height}{extra}">'
            + "".join(chips) + "</div>")


def shown_piece(piece: str, markers: bool = False) -> str:
    """A token's text for a chip: blank tokens get visible markers (``markers`` marks every space) so none is empty."""
    shown = visible_whitespace(piece, spaces=True) if markers else piece
    return shown if shown.strip() else ("·" * len(piece) if piece else "∅")


def chips_html(
    pieces: Sequence[str],
    ids: Sequence[int] | None = None,
    show_whitespace: bool = False,
    dimmed: Sequence[bool] | None = None,
    titles: Sequence[str] | None = None,
) -> str:
    """A row of token chips (a colour per position, the id underneath; ``dimmed`` ones grey and struck out)."""
    out = []
    for i, piece in enumerate(pieces):
        dim = bool(dimmed[i]) if dimmed is not None else False
        out.append(chip(
            shown_piece(piece, show_whitespace),
            "#dee2e6" if dim else CHIP_COLOURS[i % len(CHIP_COLOURS)],
            "#868e96" if dim else "#1a1a1a",
            titles[i] if titles is not None else "",
            int(ids[i]) if ids is not None else None,
            strike=dim,
        ))
    return chip_row(out)


def chip_title(piece: tok.TokenPiece) -> str:
    """Hover text of one tokenizer chip: position, id, the vocabulary entry and its bytes."""
    kind = "control token" if piece.special else ("part of a character" if piece.partial else "token")
    return f"#{piece.index} · id {piece.token_id} · {kind} · entry {piece.raw!r} · {piece.n_bytes} byte(s)"


def token_piece_chips(pieces: Sequence[tok.TokenPiece], show_markers: bool = False, limit: int = MAX_CHIPS) -> str:
    """Tokenizer chips: the vocabulary entry (``Ġ`` markers) or the readable text, control tokens dark, byte pieces
    dashed."""
    out = []
    for piece in pieces[:limit]:
        text = piece.raw if show_markers else (piece.text if piece.text.strip() else
                                                visible_whitespace(piece.text, spaces=True) or "∅")
        special = piece.special
        out.append(chip(text, "#343a40" if special else CHIP_COLOURS[piece.index % len(CHIP_COLOURS)],
                        "#f8f9fa" if special else "#1a1a1a", chip_title(piece), piece.token_id, dashed=piece.partial))
    return chip_row(out, line_height=1.25)


# --- BLEU matches ---
#: Background per longest matched n-gram (0 = no match, 1..4).
MATCH_COLOURS = ("#f1f3f5", "#d3f9d8", "#8ce99a", "#51cf66", "#2f9e44")
MATCH_TEXT = ("#868e96", "#1a1a1a", "#1a1a1a", "#1a1a1a", "#ffffff")


def highlight_html(result: BleuResult) -> str:
    """The hypothesis as BLEU tokens, each coloured by the longest n-gram match it is part of."""
    out = [
        chip(t, MATCH_COLOURS[lvl], MATCH_TEXT[lvl], f"part of a matched {lvl}-gram" if lvl else "not in any reference",
             radius=5, padding="3px 7px", pre=False, strike=not lvl)
        for t, lvl in zip(result.tokens, result.match_level)
    ]
    return chip_row(out, line_height=1.3, extra=";margin:6px 0")


def match_legend_html() -> str:
    """Legend for :func:`highlight_html`."""
    names = ("no match", "word (1-gram)", "2-gram", "3-gram", "4-gram")
    cells = "".join(
        f'<span style="background:{MATCH_COLOURS[i]};color:{MATCH_TEXT[i]};padding:1px 6px;border-radius:4px">'
        f"{names[i]}</span>"
        for i in range(5)
    )
    return f'<div style="display:flex;gap:4px;flex-wrap:wrap;font-size:0.85em">Longest match: {cells}</div>'


# --- surprise (per-token loss) ---
#: Loss (nats) at which the surprise colour is fully saturated.
SURPRISE_MAX = 10.0


def surprise_colour(loss: float) -> str:
    """Background for a token with this loss: white (expected) to red (surprising)."""
    a = min(max(loss, 0.0) / SURPRISE_MAX, 1.0)
    return f"rgba(240, 62, 62, {0.06 + 0.84 * a:.2f})"


def surprise_html(score: TextScore, max_tokens: int | None = None) -> str:
    """The text as token chips coloured by surprise (−log p); hover shows p, loss and rank."""
    toks = score.tokens if max_tokens is None else score.tokens[:max_tokens]
    out = []
    for t in toks:
        shown = visible_whitespace(t.text)
        shown = shown if shown.strip() else "·" * max(1, len(shown))
        out.append(chip(shown, surprise_colour(t.loss), "#fff" if t.loss > SURPRISE_MAX * 0.6 else "#1a1a1a",
                        f"p = {t.prob:.2e} · loss = {t.loss:.2f} nats · rank {t.rank:,}", radius=5, padding="2px 5px"))
    if max_tokens is not None and len(score.tokens) > max_tokens:
        out.append(f'<span style="opacity:0.7">… {len(score.tokens) - max_tokens:,} more tokens</span>')
    return chip_row(out, gap=3, line_height=1.25)


def surprise_legend_html() -> str:
    """A small legend for :func:`surprise_html`."""
    cells = "".join(
        f'<span style="background:{surprise_colour(v)};color:{"#fff" if v > SURPRISE_MAX * 0.6 else "#1a1a1a"};'
        f'padding:1px 6px;border-radius:4px;font-size:0.85em">{v:g}</span>'
        for v in (0, 1, 2, 4, 6, 8, 10)
    )
    return (
        '<div style="display:flex;gap:4px;align-items:center;margin:4px 0 8px 0;font-size:0.9em">'
        f"<span>loss in nats (−log p):</span>{cells}<span>+ (hover a token for details)</span></div>"
    )


# --- generated text ---
def continued_text_html(prompt: str, added: str) -> str:
    """The prompt in plain ink and the appended tokens highlighted."""
    return (
        '<div style="font-family:ui-monospace,monospace;font-size:1.05rem;white-space:pre-wrap;padding:10px 12px;'
        'border-radius:8px;border:1px solid #ced4da;line-height:1.5">'
        f'{html_escape(prompt)}<span style="background:#ffe8cc;color:#1a1a1a;border-radius:4px">{html_escape(added)}'
        "</span></div>"
    )


# --- encoders ---
def wordpiece_chips_html(pieces: Sequence[str], ids: Sequence[int] | None = None, limit: int = MAX_CHIPS) -> str:
    """WordPiece tokens as chips: ``[CLS]``/``[SEP]``/``[UNK]`` dark, a ``##`` piece (continuing a word) dashed.

    Args:
        pieces: Vocabulary entries as stored (``##ing``).
        ids: Token ids shown under each chip.
        limit: Most chips drawn.
    """
    out = []
    for i, piece in enumerate(pieces[:limit]):
        special = piece.startswith("[") and piece.endswith("]") and len(piece) > 2
        kind = "special token" if special else ("continues the word before" if piece.startswith("##") else "starts a word")
        out.append(chip(
            piece, "#343a40" if special else CHIP_COLOURS[i % len(CHIP_COLOURS)], "#f8f9fa" if special else "#1a1a1a",
            f"#{i} · {kind} · entry {piece!r}", int(ids[i]) if ids is not None else None,
            dashed=piece.startswith("##"),
        ))
    return chip_row(out)
