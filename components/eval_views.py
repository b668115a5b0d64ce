"""Views for the evaluation page: BLEU with highlighted n-gram matches, n-gram tables, and candidate comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.charts import ACCENT, HIGHLIGHT
from components.ui import esc
from engine.evaluation import MAX_BLEU_CHARS, MAX_REFERENCES, BleuResult, first_line, sentence_bleu

#: Background per longest matched n-gram (0 = no match, 1..4).
MATCH_COLOURS = ("#f1f3f5", "#d3f9d8", "#8ce99a", "#51cf66", "#2f9e44")
MATCH_TEXT = ("#868e96", "#1a1a1a", "#1a1a1a", "#1a1a1a", "#ffffff")

#: Translation task the model is given (the source sentence is the user's).
TASK_TEMPLATE = "Translate this French sentence into English: « {source} »"


@st.cache_resource(show_spinner="The model is translating…", max_entries=64)
def model_translation(model_key: str, source: str) -> tuple[str, str]:
    """The model's translation of ``source`` (greedy, chat template): (first line of the answer, full answer)."""
    from components.training_views import generation

    full = generation(model_key, TASK_TEMPLATE.format(source=source), True, 40)
    return first_line(full), full


def parse_references(text: str) -> list[str]:
    """One reference per non-empty line, at most :data:`MAX_REFERENCES`, each cut to :data:`MAX_BLEU_CHARS`."""
    refs = [line.strip()[:MAX_BLEU_CHARS] for line in text.splitlines() if line.strip()]
    return refs[:MAX_REFERENCES]


def bleu_or_message(hypothesis: str, references: Sequence[str]) -> tuple[BleuResult | None, str | None]:
    """BLEU, or a message to show instead (empty inputs)."""
    try:
        return sentence_bleu(hypothesis[:MAX_BLEU_CHARS], references), None
    except ValueError as err:
        return None, str(err)


def highlight_html(result: BleuResult) -> str:
    """The hypothesis as BLEU tokens, each coloured by the longest n-gram match it is part of. All escaped."""
    out = ['<div style="display:flex;flex-wrap:wrap;gap:4px;line-height:1.3;margin:6px 0">']
    for tok, lvl in zip(result.tokens, result.match_level):
        title = f"part of a matched {lvl}-gram" if lvl else "not in any reference"
        out.append(
            f'<span class="llmx-chip" title="{esc(title)}" style="background:{MATCH_COLOURS[lvl]};'
            f"color:{MATCH_TEXT[lvl]};border-radius:5px;padding:3px 7px;font-family:ui-monospace,monospace;"
            f'{"" if lvl else "text-decoration:line-through;"}">{esc(tok)}</span>'
        )
    out.append("</div>")
    return "".join(out)


def match_legend_html() -> str:
    """Legend for :func:`highlight_html`."""
    names = ("no match", "word (1-gram)", "2-gram", "3-gram", "4-gram")
    cells = "".join(
        f'<span style="background:{MATCH_COLOURS[i]};color:{MATCH_TEXT[i]};padding:1px 6px;border-radius:4px">'
        f"{names[i]}</span>"
        for i in range(5)
    )
    return f'<div style="display:flex;gap:4px;flex-wrap:wrap;font-size:0.85em">Longest match: {cells}</div>'


def ngram_table(result: BleuResult) -> pd.DataFrame:
    """Per n: matched / total n-grams, raw precision, and which n-grams matched."""
    rows = []
    for n in range(1, 5):
        matched, total = result.counts[n - 1], result.totals[n - 1]
        grams = ", ".join(f"“{g}”" + (f" ×{c}" if c > 1 else "") for g, c in result.matched.get(n, []))
        rows.append(
            {
                "n": n,
                "matched": matched,
                "in candidate": total,
                "precision": (matched / total) if total else float("nan"),
                "matched n-grams": grams or "(none)",
            }
        )
    return pd.DataFrame(rows)


def precision_figure(result: BleuResult) -> go.Figure:
    """Raw n-gram precisions (matched / total) for n = 1..4."""
    xs = [f"{n}-gram" for n in range(1, 5)]
    ys = [(c / t) if t else 0.0 for c, t in zip(result.counts, result.totals)]
    fig = go.Figure(
        go.Bar(
            x=xs, y=ys, marker_color=[MATCH_COLOURS[n] for n in range(1, 5)],
            marker_line=dict(color="#2b8a3e", width=1),
            text=[f"{c}/{t}" for c, t in zip(result.counts, result.totals)], textposition="auto",
            hovertemplate="%{x}: %{y:.0%} of the candidate's n-grams appear in a reference<extra></extra>",
        )
    )
    fig.update_layout(yaxis=dict(title="precision", tickformat=".0%", range=[0, 1.05]), height=280, showlegend=False)
    return fig


def candidates_figure(labels: Sequence[str], bleus: Sequence[float], same_meaning: Sequence[bool]) -> go.Figure:
    """BLEU per candidate, coloured by whether the candidate keeps the reference's meaning."""
    fig = go.Figure(
        go.Bar(
            x=list(bleus),
            y=list(labels),
            orientation="h",
            marker_color=[ACCENT if ok else HIGHLIGHT for ok in same_meaning],
            text=[f"{b:.1f}" for b in bleus],
            textposition="auto",
            customdata=["same meaning" if ok else "different meaning" for ok in same_meaning],
            hovertemplate="%{y}<br>BLEU %{x:.1f} (%{customdata})<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(title="BLEU (0-100)", range=[0, 100]),
        yaxis=dict(autorange="reversed", type="category"),
        height=110 + 48 * len(labels),
        showlegend=False,
    )
    fig.update_layout(title=dict(text="BLEU against the reference · blue: same meaning · orange: different meaning",
                                 font=dict(size=13)))
    return fig
