"""Figures and tables for the summarization page: ROUGE of the model against the lead baseline, and the metrics'
blind spots (pure: plain values in, a plotly figure or DataFrame out; no Streamlit)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from components.figures.base import ACCENT, HIGHLIGHT, MUTED
from engine.summarize import ROUGE_NAMES, ROUGE_TYPES, Comparison, MissRow

MODEL_LABEL = "Model summary"
LEAD_LABEL = "Lead baseline (first sentences)"


def rouge_table(comp: Comparison) -> pd.DataFrame:
    """One row per (ROUGE variant, candidate): precision, recall and F1 (0..1)."""
    rows = []
    for name in ROUGE_TYPES:
        for label, scores in ((MODEL_LABEL, comp.model), (LEAD_LABEL, comp.lead)):
            s = scores[name]
            rows.append({"metric": ROUGE_NAMES[name], "candidate": label, "precision": s.precision,
                         "recall": s.recall, "F1": s.f1})
    return pd.DataFrame(rows)


def rouge_figure(comp: Comparison) -> go.Figure:
    """Grouped bars of ROUGE F1: the model's summary next to the lead baseline, per variant."""
    x = [ROUGE_NAMES[n].split(" (")[0] for n in ROUGE_TYPES]
    fig = go.Figure()
    for label, scores, colour in ((MODEL_LABEL, comp.model, ACCENT), (LEAD_LABEL, comp.lead, MUTED)):
        y = [scores[n].f1 for n in ROUGE_TYPES]
        fig.add_trace(go.Bar(name=label, x=x, y=y, marker_color=colour, text=[f"{v:.3f}" for v in y],
                             textposition="outside", cliponaxis=False,
                             hovertemplate="%{x} F1 %{y:.3f}<extra>" + label + "</extra>"))
    fig.update_layout(barmode="group", yaxis=dict(title="F1 against the reference", range=[0, 1.05]), height=340,
                      legend=dict(orientation="h", y=-0.15),
                      title=dict(text="ROUGE F1: the model's summary against copying the first sentences",
                                 font=dict(size=13)))
    return fig


def misses_table(rows: Sequence[MissRow]) -> pd.DataFrame:
    """The blind-spot candidates with their ROUGE F1 (0..1) and BLEU (0..100)."""
    return pd.DataFrame([{"kind": r.label, "candidate": r.text, "same meaning": r.same_meaning,
                          "ROUGE-1 F1": r.rouge1, "ROUGE-2 F1": r.rouge2, "ROUGE-L F1": r.rougeL, "BLEU": r.bleu}
                         for r in rows])


def misses_figure(rows: Sequence[MissRow]) -> go.Figure:
    """ROUGE-1 F1 and BLEU/100 per candidate; the candidate's name is blue when it keeps the meaning, orange when
    not."""
    labels = [f"{r.label} ({'same' if r.same_meaning else 'different'} meaning)" for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(name="ROUGE-1 F1", y=labels, x=[r.rouge1 for r in rows], orientation="h",
                         marker_color=[ACCENT if r.same_meaning else HIGHLIGHT for r in rows],
                         text=[f"{r.rouge1:.2f}" for r in rows], textposition="auto",
                         hovertemplate="%{y}<br>ROUGE-1 F1 %{x:.3f}<extra></extra>"))
    fig.add_trace(go.Bar(name="BLEU / 100", y=labels, x=[r.bleu / 100 for r in rows], orientation="h",
                         marker_color=MUTED, text=[f"{r.bleu:.1f}" for r in rows], textposition="auto",
                         hovertemplate="%{y}<br>BLEU %{text}<extra></extra>"))
    fig.update_layout(barmode="group", xaxis=dict(title="score (BLEU divided by 100)", range=[0, 1.05]),
                      yaxis=dict(autorange="reversed", type="category"), height=140 + 70 * len(rows),
                      legend=dict(orientation="h", y=-0.2),
                      title=dict(text="Word overlap is not meaning · coloured bars: ROUGE-1 (blue = same meaning, "
                                      "orange = different) · grey: BLEU", font=dict(size=13)))
    return fig
