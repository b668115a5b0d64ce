"""Chart margins worked out from the labels a figure will show, so the browser need not measure them (pure).

Plotly's ``automargin`` draws a chart, measures its tick labels and titles, and grows the margins to fit them. In
Chromium on this project's 2-core machine that was a fifth of a chart-heavy page's revisit (ML→LLM settled in
1.04–1.19 s without it against 1.26–1.76 s with it). For a figure whose labels are known here (numbers on both axes,
or category names on a horizontal bar chart's y axis) the margins are computed from the label text with a generous
character width and ``automargin`` is switched off; anything else (category labels along x, which plotly may
rotate; log axes; subplots; animations) keeps ``automargin``. ``tests/browser/test_pages.py`` checks in Chromium that
no tick label or axis title of any chart is cut off, in normal and presentation mode.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

#: Upper bound of a character's width in ems for the app's font (Source Sans: digits 0.5 em, most letters less).
CHAR_EM = 0.62
#: Height of a line of text in ems.
LINE_EM = 1.3
BASE = 10  # px around the plot, as ``style_fig`` sets
GAP = 6  # px between the plot and its tick labels, and between tick labels and the axis title
_TRACES = {"scatter", "bar", "heatmap", "contour", "histogram"}


def _values(trace, axis: str) -> list | None:
    """The trace's coordinates along ``axis`` ("x" or "y"), or None when it has none there."""
    v = getattr(trace, axis, None)
    if v is None:
        return None
    return list(np.asarray(v).ravel()) if not isinstance(v, (list, tuple)) else list(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _number_chars(lo: float, hi: float, percent: bool) -> int:
    """Characters of the longest tick label plotly may print between ``lo`` and ``hi`` (upper bound)."""
    if percent:
        lo, hi = lo * 100, hi * 100
    span = max(abs(lo), abs(hi), 1e-12)
    digits = max(1, math.floor(math.log10(span)) + 1)  # before the decimal point
    if span >= 1e4:  # plotly writes 12k, 1.5M
        digits = 4
    decimals = 0 if hi - lo >= 10 else 1 if hi - lo >= 1 else 2 if hi - lo >= 0.1 else 3
    return digits + (1 + decimals if decimals else 0) + (1 if min(lo, hi) < 0 else 0) + (1 if percent else 0)


def _axis_chars(fig: go.Figure, axis: str) -> int | None:
    """Characters of the longest tick label on ``axis``, or None when they cannot be known here."""
    ax = fig.layout[f"{axis}axis"]
    if ax.showticklabels is False:
        return 0
    if ax.type == "log" or ax.tickangle not in (None, 0):
        return None
    if ax.ticktext is not None:
        return max((len(str(t)) for t in ax.ticktext), default=0)
    values: list = []
    other = "y" if axis == "x" else "x"
    for trace in fig.data:
        v = _values(trace, axis)
        if v is None and trace.type == "scatter" and _values(trace, other) is not None:
            v = list(range(len(_values(trace, other))))  # plotly's default coordinates: 0, 1, 2, …
        if v is None and trace.type in ("heatmap", "contour") and trace.z is not None:
            z = np.asarray(trace.z)
            v = list(range(z.shape[1] if axis == "x" else z.shape[0])) if z.ndim == 2 else None
        if v is None:
            if trace.type == "bar":  # the bar's value axis starts at zero
                values.append(0)
            continue
        values += v
    if not values:
        return None
    if all(isinstance(v, str) for v in values):
        return max(len(v) for v in values) if axis == "y" else None  # categories along x may be rotated
    numbers = [float(v) for v in values if _is_number(v) and math.isfinite(float(v))]
    if len(numbers) != len(values):
        return None
    if any(t.type == "bar" for t in fig.data):
        numbers.append(0.0)
    lo, hi = (ax.range[0], ax.range[1]) if ax.range is not None else (min(numbers), max(numbers))
    chars = _number_chars(float(lo), float(hi), "%" in (ax.tickformat or ""))
    return chars + len(ax.ticksuffix or "") + len(ax.tickprefix or "")


def _title_lines(fig: go.Figure, axis: str) -> int:
    """Lines of the axis title (0 without one; ``<br>`` breaks a line)."""
    title = fig.layout[f"{axis}axis"].title
    return title.text.count("<br>") + 1 if title and title.text else 0


def label_margins(fig: go.Figure, tick_px: float, title_px: float) -> dict[str, int] | None:
    """Left, bottom and right margins (px) that hold every tick label and axis title of ``fig``, or None when its
    labels cannot be known here (the figure then keeps plotly's ``automargin``).

    Args:
        fig: The figure as it will be sent.
        tick_px: Tick label font size in pixels.
        title_px: Axis title font size in pixels.
    """
    if fig.frames or any(t.type not in _TRACES for t in fig.data) or not fig.data:
        return None
    if any(k.startswith(("xaxis", "yaxis")) and k not in ("xaxis", "yaxis") for k in fig.layout.to_plotly_json()):
        return None  # subplots
    if any((t.xaxis or "x") != "x" or (t.yaxis or "y") != "y" for t in fig.data):
        return None
    x_chars, y_chars = _axis_chars(fig, "x"), _axis_chars(fig, "y")
    if x_chars is None or y_chars is None:
        return None
    char_px, line_px = CHAR_EM * tick_px, LINE_EM * tick_px
    y_title, x_title = _title_lines(fig, "y"), _title_lines(fig, "x")
    left = BASE + (math.ceil(y_chars * char_px) + GAP if y_chars else 0)
    left += math.ceil(y_title * LINE_EM * title_px) + GAP if y_title else 0
    bottom = BASE + (math.ceil(line_px) + GAP if x_chars else 0)
    bottom += math.ceil(x_title * LINE_EM * title_px) + GAP if x_title else 0
    right = max(BASE, math.ceil(x_chars * char_px / 2) + 2)  # the last x label is centred on the plot's edge
    return {"l": left, "b": bottom, "r": right}
