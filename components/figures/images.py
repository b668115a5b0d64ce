"""Figures for the diffusion page: digit grids, the reverse process as an animation, the loss curve, the noise
schedule and the 2-D toy's denoising field (pure plotly: no Streamlit).

Images arrive in the model's space, 64 values in [−1, 1] per 8×8 digit (−1 = paper white, 1 = full ink).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from components.figures.base import ACCENT, HIGHLIGHT, MUTED

#: White paper, black ink, as scikit-learn's digits are usually drawn.
INK = [[0.0, "#ffffff"], [1.0, "#111111"]]
GAP = 1  # blank pixels between tiles
#: The animations' frames travel as float32: plotly sends numpy arrays as binary, 8 bytes a value in float64, for
#: grey levels and 2-D points a screen cannot tell apart at float32's 7 digits. The diffusion page's two animations
#: went from 390 to 234 KB per visitor (the page from 541 to 377 KB; its revisit time did not change measurably).
FRAME_DTYPE = np.float32


def tile(images: np.ndarray, cols: int) -> np.ndarray:
    """Lay out ``[N, 64]`` images as one ``[rows·9−1, cols·9−1]`` array, NaN in the gaps (drawn transparent)."""
    images = np.asarray(images, dtype=float).reshape(-1, 8, 8)
    n = images.shape[0]
    rows = max(1, -(-n // cols))
    out = np.full((rows * (8 + GAP) - GAP, cols * (8 + GAP) - GAP), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = img
    return out


def digit_grid(
    images: np.ndarray | Sequence,
    titles: Sequence[str] | None = None,
    cols: int | None = None,
    height: int | None = None,
    clip: bool = True,
) -> go.Figure:
    """Digits side by side (one heatmap, tiles separated by gaps), each with a title above it.

    Args:
        images: ``[N, 64]`` in model space.
        titles: One short title per image (shown above it).
        cols: Images per row (default: all in one row).
        height: Figure height in pixels (default from the number of rows).
        clip: Show values outside [−1, 1] (noise) as white / black instead of stretching the grey scale.
    """
    images = np.asarray(images, dtype=float).reshape(-1, 64)
    cols = cols or len(images)
    grid = tile(images, cols)
    rows = grid.shape[0] // 9 + 1
    fig = go.Figure(
        go.Heatmap(
            z=grid, colorscale=INK, zmin=-1 if clip else None, zmax=1 if clip else None, showscale=False,
            hovertemplate="value %{z:.2f}<extra></extra>", xgap=0, ygap=0,
        )
    )
    for i, title in enumerate(titles or ()):
        r, c = divmod(i, cols)
        fig.add_annotation(x=c * 9 + 3.5, y=r * 9 - 0.6, text=title, showarrow=False, yanchor="bottom",
                           font=dict(size=12))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(height=height or 40 + 150 * rows, plot_bgcolor="rgba(0,0,0,0)",
                      margin=dict(t=30 if titles else 10))
    return fig


def reverse_animation(frames: np.ndarray, labels: Sequence[str], cols: int | None = None) -> go.Figure:
    """The reverse process as a plotly animation (Play button and a step slider, in the browser).

    Args:
        frames: ``[K, N, 64]``: K moments of N images each (noise first, finished digits last).
        labels: One label per moment (``"step 0 of 100"`` …).
        cols: Images per row.
    """
    frames = np.asarray(frames, dtype=float)
    cols = cols or frames.shape[1]
    grids = [tile(f, cols).astype(FRAME_DTYPE) for f in frames]
    fig = go.Figure(
        go.Heatmap(z=grids[-1], colorscale=INK, zmin=-1, zmax=1, showscale=False,
                   hovertemplate="value %{z:.2f}<extra></extra>"),
        frames=[go.Frame(data=[go.Heatmap(z=g)], name=str(i)) for i, g in enumerate(grids)],
    )
    steps = [
        dict(method="animate", label=lab, args=[[str(i)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                               transition=dict(duration=0))])
        for i, lab in enumerate(labels)
    ]
    fig.update_layout(
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.05, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, dict(frame=dict(duration=120, redraw=True), fromcurrent=False,
                                                         transition=dict(duration=0))])])],
        sliders=[dict(active=len(grids) - 1, steps=steps, x=0.12, len=0.88, y=-0.02, yanchor="top",
                      currentvalue=dict(prefix="", font=dict(size=12)))],
        height=80 + 140 * (grids[0].shape[0] // 9 + 1) + 60,
        plot_bgcolor="rgba(0,0,0,0)",
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return fig


def loss_curve(curves: dict[str, Sequence[float]], window: int) -> go.Figure:
    """Training loss (mean over each ``window`` steps), one line per named run."""
    fig = go.Figure()
    for (name, values), colour in zip(curves.items(), (ACCENT, HIGHLIGHT, MUTED)):
        fig.add_trace(go.Scatter(x=[(i + 1) * window for i in range(len(values))], y=list(values), name=name,
                                 mode="lines", line=dict(color=colour, width=2)))
    fig.update_layout(xaxis_title="training step", yaxis_title="loss ‖ε − ε̂‖²<br>(mean per value)", height=300,
                      legend=dict(orientation="h", y=1.12))
    fig.update_yaxes(rangemode="tozero")
    return fig


def schedule_figure(signal: Sequence[float], noise: Sequence[float], current: int) -> go.Figure:
    """How much of the clean image (√ᾱ_t) and of the noise (√(1 − ᾱ_t)) makes up x_t, with step t marked."""
    t = list(range(len(signal)))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=list(signal), name="√ᾱ_t (share of the image)", line=dict(color=ACCENT)))
    fig.add_trace(go.Scatter(x=t, y=list(noise), name="√(1 − ᾱ_t) (share of the noise)", line=dict(color=HIGHLIGHT)))
    fig.add_vline(x=current, line_dash="dot", line_color=MUTED)
    fig.update_layout(xaxis_title="step t", yaxis_title="weight in x_t", height=260,
                      legend=dict(orientation="h", y=1.18))
    return fig


def toy_field_figure(
    data: np.ndarray, points: np.ndarray, arrows: np.ndarray, samples: np.ndarray | None, lim: float = 2.5
) -> go.Figure:
    """The 2-D toy: training points (grey), the learned denoising direction as arrows, and samples (orange).

    Args:
        data: Training points ``[M, 2]``.
        points: Arrow tails ``[G, 2]``.
        arrows: Arrow vectors ``[G, 2]`` (already scaled for display).
        samples: Current positions of the generated points ``[N, 2]`` or None.
    """
    tips = points + arrows
    xs, ys = [], []
    for (x0, y0), (x1, y1) in zip(points, tips):
        xs += [float(x0), float(x1), None]
        ys += [float(y0), float(y1), None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=data[:, 0], y=data[:, 1], mode="markers", name="training data",
                             marker=dict(color=MUTED, size=4)))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="denoising direction",
                             line=dict(color=ACCENT, width=1.5), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=tips[:, 0], y=tips[:, 1], mode="markers", name="arrow tips", showlegend=False,
                             marker=dict(color=ACCENT, size=4, symbol="circle"), hoverinfo="skip"))
    if samples is not None:
        fig.add_trace(go.Scatter(x=samples[:, 0], y=samples[:, 1], mode="markers", name="generated points",
                                 marker=dict(color=HIGHLIGHT, size=5)))
    fig.update_xaxes(range=[-lim, lim], zeroline=False, constrain="domain")
    fig.update_yaxes(range=[-lim, lim], scaleanchor="x", zeroline=False, constrain="domain")
    fig.update_layout(height=480, legend=dict(orientation="h", y=1.08))
    return fig


def toy_flow_animation(data: np.ndarray, path: np.ndarray, labels: Sequence[str], lim: float = 2.5) -> go.Figure:
    """Generated 2-D points flowing from noise onto the data (Play button and slider in the browser).

    Args:
        data: Training points ``[M, 2]``.
        path: ``[K, N, 2]`` positions at K moments (noise first).
        labels: One label per moment.
    """
    path = np.asarray(path, dtype=FRAME_DTYPE)
    data_trace = go.Scatter(x=data[:, 0], y=data[:, 1], mode="markers", name="training data",
                            marker=dict(color=MUTED, size=4))

    def moving(p):
        return go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name="generated points",
                          marker=dict(color=HIGHLIGHT, size=5))

    fig = go.Figure(data=[data_trace, moving(path[-1])],
                    frames=[go.Frame(data=[moving(p)], traces=[1], name=str(i)) for i, p in enumerate(path)])
    steps = [dict(method="animate", label=lab, args=[[str(i)], dict(mode="immediate", frame=dict(duration=0),
                                                                     transition=dict(duration=0))])
             for i, lab in enumerate(labels)]
    fig.update_layout(
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.08, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, dict(frame=dict(duration=150), fromcurrent=False,
                                                         transition=dict(duration=100))])])],
        sliders=[dict(active=len(path) - 1, steps=steps, x=0.12, len=0.88, y=-0.05, yanchor="top")],
        height=520, legend=dict(orientation="h", y=1.08),
    )
    fig.update_xaxes(range=[-lim, lim], zeroline=False, constrain="domain")
    fig.update_yaxes(range=[-lim, lim], scaleanchor="x", zeroline=False, constrain="domain")
    return fig
