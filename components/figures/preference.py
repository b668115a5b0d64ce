"""Figures for the RLHF page: DPO's live curves, rewards of answers, best-of-n and reward gaming (pure plotly/pandas)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures.base import ACCENT, HIGHLIGHT, MUTED
from engine.preference import BestOfN, DpoStep, GamingRow, RewardReport, sigmoid

DPO_PANELS = ("DPO loss", "log-prob margin: chosen − rejected (nats)", "implicit reward β·(log π − log π_ref)",
              "KL from the reference (nats per token)")


def dpo_curves_figure(history: Sequence[DpoStep], total_steps: int | None = None) -> go.Figure:
    """Four small panels over training steps: the DPO loss, the chosen−rejected margin, the implicit rewards of the
    chosen and rejected answers, and the KL from the reference model.

    Args:
        history: One entry per pass (step 0 = before training).
        total_steps: Fix the x axis to the planned run length (live curves do not rescale).
    """
    fig = make_subplots(rows=2, cols=2, subplot_titles=DPO_PANELS, horizontal_spacing=0.1, vertical_spacing=0.18)
    x = [s.step for s in history]
    series = [
        (1, 1, "DPO loss", [s.loss for s in history], ACCENT),
        (1, 2, "margin", [s.margin for s in history], ACCENT),
        (2, 1, "chosen", [s.reward_chosen for s in history], ACCENT),
        (2, 1, "rejected", [s.reward_rejected for s in history], HIGHLIGHT),
        (2, 2, "KL", [s.kl for s in history], ACCENT),
    ]
    for row, col, name, y, colour in series:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line=dict(color=colour, width=2),
                                 marker=dict(size=4), showlegend=row == 2 and col == 1,
                                 hovertemplate="step %{x}: %{y:.4f}<extra>" + name + "</extra>"), row=row, col=col)
    xmax = max(total_steps or 0, x[-1] if x else 1, 1)
    fig.update_xaxes(range=[-0.5, xmax + 0.5], title_text="step")
    fig.update_layout(height=520, margin=dict(t=50, b=40), legend=dict(orientation="h", x=0.0, y=-0.12))
    return fig


def reward_pairs_figure(report: RewardReport) -> go.Figure:
    """Held-out pairs: reward of the chosen and rejected answer side by side (a right ranking: chosen higher)."""
    labels = [f"{i + 1}. {row[0][:28]}" for i, row in enumerate(report.test_rows)]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=labels, x=[r[3] for r in report.test_rows], orientation="h", name="chosen answer",
                         marker_color=ACCENT, customdata=[r[1] for r in report.test_rows],
                         hovertemplate="%{customdata}<br>reward %{x:.2f}<extra>chosen</extra>"))
    fig.add_trace(go.Bar(y=labels, x=[r[4] for r in report.test_rows], orientation="h", name="rejected answer",
                         marker_color=HIGHLIGHT, customdata=[r[2] for r in report.test_rows],
                         hovertemplate="%{customdata}<br>reward %{x:.2f}<extra>rejected</extra>"))
    fig.update_layout(barmode="group", height=max(260, 34 * len(labels) + 90), xaxis_title="reward r(answer)",
                      yaxis=dict(autorange="reversed", type="category"), legend=dict(orientation="h", y=1.08, x=0),
                      margin=dict(t=40))
    return fig


def reward_table(report: RewardReport, likelihoods: Sequence[tuple[float, float]] | None = None) -> pd.DataFrame:
    """The held-out pairs with both rewards, p(chosen preferred) and, when given, the language model's own
    log-likelihoods."""
    rows = []
    for i, (prompt, chosen, rejected, rc, rr) in enumerate(report.test_rows):
        row = {
            "prompt": prompt, "chosen": chosen, "rejected": rejected,
            "r(chosen)": round(rc, 2), "r(rejected)": round(rr, 2),
            "p(chosen preferred)": round(sigmoid(rc - rr), 3),
            "right?": "✓" if rc > rr else "✗",
        }
        if likelihoods is not None:
            lc, lr = likelihoods[i]
            row.update({"log p(chosen) by the LM": round(lc, 1), "log p(rejected) by the LM": round(lr, 1)})
        rows.append(row)
    return pd.DataFrame(rows)


def gaming_table(rows: Sequence[GamingRow]) -> pd.DataFrame:
    """Each trick: the answer, the padded or flattering variant, both rewards and the change."""
    return pd.DataFrame([{
        "trick": r.trick, "answer": r.answer, "variant": r.variant, "reward": round(r.reward, 2),
        "variant's reward": round(r.variant_reward, 2), "change": round(r.variant_reward - r.reward, 2),
    } for r in rows])


def best_of_n_figure(result: BestOfN) -> go.Figure:
    """Reward of each sampled answer (best first, the pick highlighted) and the LM's own log-likelihood per token."""
    labels = [f"#{i + 1}: {a[:40]}{'…' if len(a) > 40 else ''}" for i, a in enumerate(result.answers)]
    per_token = [lp / max(1, n) for lp, n in zip(result.logprob, result.tokens)]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("reward model's score", "LM's own log p per token"))
    colours = [HIGHLIGHT if i == 0 else MUTED for i in range(len(labels))]
    fig.add_trace(go.Bar(y=labels, x=result.rewards, orientation="h", marker_color=colours, showlegend=False,
                         customdata=result.answers, hovertemplate="%{customdata}<br>reward %{x:.2f}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Bar(y=labels, x=per_token, orientation="h", marker_color=ACCENT, showlegend=False,
                         hovertemplate="%{x:.2f} nats per token<extra></extra>"), row=1, col=2)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(height=max(240, 44 * len(labels) + 80), margin=dict(t=40))
    return fig


def answers_table(prompts: Sequence[str], before: Sequence[str], after: Sequence[str]) -> pd.DataFrame:
    """Held-out prompts with the original model's answer and the preference-tuned one."""
    return pd.DataFrame({"prompt": list(prompts), "original model": list(before), "after DPO": list(after)})
