"""Line charts: curves over temperature, layers, window sizes, steps and positions (pure plotly)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from components.figures.base import ACCENT, HIGHLIGHT, MUTED, token_label, token_labels
from engine import context as ctx
from engine import ml_basics as mb
from engine.attention import BlockFlow
from engine.logit_lens import LensResult
from engine.training import GradientStep

GROUP_COLOURS = ("#4c6ef5", "#f76707")


def temperature_overlay_figure(
    pieces: Sequence[str], curves: dict[float, Sequence[float]], current: float, log_scale: bool = False
) -> go.Figure:
    """p(token) of the same tokens under several temperatures, one line per T (the current T drawn thick).

    Args:
        pieces: Token texts, most likely first (at T = 1).
        curves: Temperature → probability of each token.
        current: The slider's temperature, highlighted.
        log_scale: Logarithmic probability axis, so the tail that high temperatures lift is visible.
    """
    labels = token_labels(pieces)
    fig = go.Figure()
    for t, probs in sorted(curves.items()):
        is_current = abs(t - current) < 1e-9
        name = ("T = 0 (greedy)" if t <= 0 else f"T = {t:g}") + (" (slider)" if is_current else "")
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=[float(p) for p in probs],
                mode="lines+markers",
                name=name,
                line=dict(width=4 if is_current else 1.5, color=HIGHLIGHT if is_current else None),
                marker=dict(size=9 if is_current else 6),
                hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        xaxis=dict(title="token (ordered by the model's own probability, T = 1)", type="category", tickangle=-45),
        yaxis=(
            dict(title="probability (log scale)", type="log", exponentformat="power")
            if log_scale
            else dict(title="probability", tickformat=".0%", rangemode="tozero")
        ),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        height=380,
    )
    return fig


def entropy_steps_figure(steps: Sequence[int], entropies: Sequence[float], probs: Sequence[float]) -> go.Figure:
    """Entropy of each step's distribution and the chosen token's probability, step by step."""
    fig = go.Figure(
        [
            go.Scatter(x=list(steps), y=list(entropies), mode="lines+markers", name="entropy (bits)",
                       marker_color=ACCENT),
            go.Scatter(x=list(steps), y=list(probs), mode="lines+markers", name="p(chosen token)", yaxis="y2",
                       marker_color=HIGHLIGHT),
        ]
    )
    fig.update_layout(
        xaxis=dict(title="step", dtick=1),
        yaxis=dict(title="entropy (bits)", rangemode="tozero"),
        yaxis2=dict(title="p(chosen)", overlaying="y", side="right", range=[0, 1.02], tickformat=".0%", dtick=0.25,
                    showgrid=False),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        height=300,
    )
    return fig


def sweep_figure(points: list[ctx.WindowSweepPoint], answer: str, fact_window: int | None) -> go.Figure:
    """p(answer) against window size; points where the fact is out of view are grey."""
    fig = go.Figure(
        go.Scatter(
            x=[p.window for p in points],
            y=[p.prob for p in points],
            mode="lines+markers",
            line={"color": ACCENT},
            marker={"color": [ACCENT if p.fact_in_view else MUTED for p in points], "size": 9},
            hovertemplate="window %{x} tokens<br>p = %{y:.4f}<extra></extra>",
            name=f"p('{answer}')",
        )
    )
    if fact_window is not None:
        fig.add_vline(
            x=fact_window, line_dash="dash", line_color=HIGHLIGHT, annotation_text="fact fully in view from here"
        )
    fig.update_layout(
        xaxis_title="window size (tokens the model sees)",
        yaxis_title=f"p('{answer}')",
        yaxis={"rangemode": "tozero"},
        height=330,
        showlegend=False,
    )
    return fig


def cost_figures(points: list[ctx.CostPoint], layers: int, heads: int) -> tuple[go.Figure, go.Figure]:
    """Measured forward time, and measured attention memory with the ``L·H·T²`` curve from the config."""
    xs = [p.n_tokens for p in points]
    time_fig = go.Figure(
        go.Scatter(
            x=xs,
            y=[p.seconds * 1000 for p in points],
            mode="lines+markers",
            line={"color": ACCENT},
            hovertemplate="%{x} tokens: %{y:.0f} ms<extra></extra>",
        )
    )
    time_fig.update_layout(
        title="Forward time (measured)", xaxis_title="sequence length T (tokens)", yaxis_title="milliseconds",
        height=320, showlegend=False,
    )
    curve_x = list(range(0, max(xs) + 1, max(1, max(xs) // 64)))
    mem_fig = go.Figure(
        [
            go.Scatter(
                x=curve_x,
                y=[ctx.attention_bytes(t, layers, heads) / 2**20 for t in curve_x],
                mode="lines",
                line={"color": MUTED, "dash": "dash"},
                name=f"{layers}·{heads}·T²·4 bytes (config)",
                hoverinfo="skip",
            ),
            go.Scatter(
                x=xs,
                y=[p.attention_bytes / 2**20 for p in points],
                mode="markers",
                marker={"color": HIGHLIGHT, "size": 10},
                name="measured attention tensor",
                hovertemplate="%{x} tokens: %{y:.1f} MiB<extra></extra>",
            ),
        ]
    )
    mem_fig.update_layout(
        title="Attention weights, all layers (MiB)", xaxis_title="sequence length T (tokens)", yaxis_title="MiB",
        height=320, legend={"orientation": "h", "y": -0.3},
    )
    return time_fig, mem_fig


def context_figure(runs: dict[str, ctx.SlidingScore]) -> go.Figure:
    """How many earlier tokens each scored token could see, for each way of reading a long text."""
    colours = (MUTED, ACCENT, HIGHLIGHT)
    fig = go.Figure()
    for (name, run), colour in zip(runs.items(), colours):
        fig.add_trace(
            go.Scatter(
                x=[t.position for t in run.tokens],
                y=run.context,
                mode="lines",
                name=name,
                line={"color": colour, "width": 2},
                hovertemplate="token %{x}: %{y} tokens of context<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis_title="position in the text (token)", yaxis_title="tokens of context seen", height=320,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def lens_trajectory(lens: LensResult, token_text, position_index: int = -1) -> go.Figure:
    """p(final prediction) and its rank at every layer for one position (log scale, so the rise is visible)."""
    p = lens.final_probs[:, position_index].double().numpy()
    ranks = lens.final_ranks[:, position_index].numpy()
    word = token_label(token_text(int(lens.final_ids[position_index])))
    floor = 1e-20  # tinier values (often the embeddings row) are drawn at the floor; the hover gives the true value
    fig = go.Figure(
        go.Scatter(
            x=lens.layer_labels,
            y=np.maximum(p, floor),
            mode="lines+markers",
            line=dict(color=ACCENT),
            customdata=np.stack([p, ranks], axis=-1),
            hovertemplate="%{x}<br>p = %{customdata[0]:.3g}, rank %{customdata[1]:,}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Probability of the final answer {word} if the model stopped here (below 1e-20 drawn at the bottom)",
        yaxis=dict(type="log", title="probability (log scale)", exponentformat="power"),
        xaxis=dict(type="category", tickangle=-45),
        height=380,
    )
    return fig


def layer_curves_figure(curves: dict[str, np.ndarray], layer: int) -> go.Figure:
    """Mean similarity per layer within each meaning and across them; a marker at the selected layer."""
    colours = {"within A": GROUP_COLOURS[0], "within B": GROUP_COLOURS[1], "across A and B": MUTED}
    fig = go.Figure()
    for name, ys in curves.items():
        fig.add_trace(
            go.Scatter(
                x=list(range(len(ys))),
                y=ys,
                mode="lines+markers",
                name=name,
                line=dict(color=colours.get(name), width=3 if name.startswith("across") else 2),
                hovertemplate=name + " · layer %{x}: %{y:.3f}<extra></extra>",
            )
        )
    fig.add_vline(x=layer, line_dash="dot", line_color="#495057")
    fig.update_layout(
        xaxis=dict(title="layer (0 = the embedding lookup)", dtick=5),
        yaxis=dict(title="mean cosine similarity"),
        height=380,
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def step_sweep_figure(gs: GradientStep, chosen: int) -> go.Figure:
    """Loss after one step against the learning rate (log x), with the loss before as a line."""
    ys = [v for v in [*gs.loss_after, gs.loss_before] if v > 0 and math.isfinite(v)] or [1.0]
    fig = go.Figure(
        go.Scatter(
            x=gs.learning_rates,
            y=gs.loss_after,
            mode="lines+markers",
            line_color=ACCENT,
            marker=dict(size=[14 if i == chosen else 8 for i in range(len(gs.learning_rates))],
                        color=[HIGHLIGHT if i == chosen else ACCENT for i in range(len(gs.learning_rates))]),
            hovertemplate="learning rate %{x}<br>loss after %{y:.3f}<extra></extra>",
            name="after one step",
        )
    )
    fig.add_hline(y=gs.loss_before, line_dash="dash", line_color=MUTED)
    # On log axes annotation coordinates are log10 values (hline annotations land in the wrong place there).
    fig.add_annotation(x=math.log10(min(gs.learning_rates)), y=math.log10(max(gs.loss_before, 1e-6)),
                       text=f"loss before the step: {gs.loss_before:.2f}", showarrow=False, xanchor="left",
                       yanchor="bottom", font=dict(color="#495057"))
    fig.update_layout(
        xaxis=dict(type="log", title="learning rate (step size)"),
        yaxis=dict(
            title="average loss after the step<br>(nats, log scale)",
            type="log",
            range=[math.log10(max(1e-3, 0.8 * min(ys))), math.log10(1.25 * max(ys))],
        ),
        height=340,
        showlegend=False,
    )
    return fig


def loss_curve_figure(losses: Sequence[float], total_steps: int | None = None) -> go.Figure:
    """Training loss per step (the live curve)."""
    steps = list(range(1, len(losses) + 1))
    fig = go.Figure(
        go.Scatter(x=steps, y=list(losses), mode="lines+markers", line_color=ACCENT,
                   hovertemplate="step %{x}: loss %{y:.3f}<extra></extra>")
    )
    fig.update_layout(
        xaxis=dict(title="step", range=[0.5, (total_steps or max(steps, default=1)) + 0.5]),
        yaxis=dict(title="loss on your text (nats)", rangemode="tozero"),
        height=300,
        showlegend=False,
    )
    return fig


def cumulative_logprob_figure(cmp: mb.SentenceComparison) -> go.Figure:
    """Running ``log p`` of each sentence, token by token: the last point is ``log p(sentence)``."""
    fig = go.Figure()
    for name, score, colour in (("A", cmp.score_a, ACCENT), ("B", cmp.score_b, HIGHLIGHT)):
        lps = [t.logprob for t in score.tokens]
        fig.add_scatter(
            x=list(range(1, len(lps) + 1)),
            y=np.cumsum(lps),
            mode="lines+markers",
            name=f"sentence {name}",
            line=dict(color=colour, width=3),
            customdata=[[token_label(t.text), t.logprob, t.rank] for t in score.tokens],
            hovertemplate="token %{x}: %{customdata[0]}<br>log p(token | before) = %{customdata[1]:.2f}"
            "<br>rank %{customdata[2]}<br>running log p = %{y:.2f}<extra>" + name + "</extra>",
        )
    fig.update_layout(xaxis_title="tokens read so far", yaxis_title="log p(text so far)  (nats)",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def regression_figure(x: np.ndarray, y: np.ndarray, fit: mb.PolyFit) -> go.Figure:
    """Training points, the fitted polynomial and the true curve."""
    xs = np.linspace(-3.2, 3.2, 200)
    fig = go.Figure()
    fig.add_scatter(x=x, y=y, mode="markers", name="training points", marker=dict(color=MUTED, size=8))
    fig.add_scatter(x=xs, y=mb.true_curve(xs), mode="lines", name="true curve", line=dict(color=MUTED, dash="dot"))
    fig.add_scatter(x=xs, y=np.clip(fit.predict(xs), -6, 6), mode="lines", name=f"fit (degree {fit.degree})",
                    line=dict(color=ACCENT, width=3))
    fig.update_layout(xaxis_title="x (feature)", yaxis_title="y (number to predict)", yaxis_range=[-4.5, 4.5],
                      legend=dict(orientation="h", y=-0.25))
    return fig


# --- encoders ---
def training_loss_figure(losses: Sequence[float], total_steps: int, title: str | None = None) -> go.Figure:
    """Training loss per step of a model trained from scratch (the live curve of the encoder-decoder).

    Args:
        losses: Loss after each step so far (nats per output character).
        total_steps: Steps planned (fixes the x axis while training runs).
        title: Figure title.
    """
    steps = list(range(1, len(losses) + 1))
    fig = go.Figure(go.Scatter(x=steps, y=[float(v) for v in losses], mode="lines", line_color=ACCENT,
                               hovertemplate="step %{x}: loss %{y:.3f}<extra></extra>"))
    fig.update_layout(
        title=title,
        xaxis=dict(title="training step", range=[0.5, max(total_steps, 1) + 0.5]),
        yaxis=dict(title="loss per output<br>character (nats)", type="log", dtick=1),
        height=300,
        showlegend=False,
    )
    return fig


#: Tick marks of the block-flow chart's log axis (plotly's default log ticks repeat 2 and 5 for every decade).
LOG_TICKS = [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000]


def block_flow_figure(flow: BlockFlow, token: str) -> go.Figure:
    """Per layer: the residual stream's length entering it, and how much its attention and its MLP add (log scale).

    Args:
        flow: :func:`engine.attention.block_flow` for one position.
        token: The text of the token at that position (for the title).
    """
    L = len(flow.attn)
    layers = list(range(L))
    fig = go.Figure()
    fig.add_trace(go.Bar(x=layers, y=flow.attn.double().numpy(), name="added by attention", marker_color=ACCENT,
                         hovertemplate="layer %{x}: attention added a vector of length %{y:.1f}<extra></extra>"))
    fig.add_trace(go.Bar(x=layers, y=flow.mlp.double().numpy(), name="added by the MLP", marker_color=HIGHLIGHT,
                         hovertemplate="layer %{x}: the MLP added a vector of length %{y:.1f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=layers, y=flow.residual[:L].double().numpy(), name="residual stream entering the layer",
                             mode="lines+markers", line=dict(color=MUTED, width=3),
                             hovertemplate="entering layer %{x}: length %{y:.1f}<extra></extra>"))
    fig.update_layout(
        title=f"The vector of {token_label(token)} (position {flow.position}) layer by layer",
        barmode="group",
        xaxis=dict(title="layer", dtick=1 if L <= 32 else None, range=[-0.6, L - 0.4]),
        yaxis=dict(type="log", title="length of the vector (log scale)", tickvals=LOG_TICKS,
                   ticktext=[f"{v:g}" for v in LOG_TICKS]),
        legend=dict(orientation="h", y=-0.25),
        height=420,
    )
    return fig
