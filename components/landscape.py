"""The AI ⊃ ML ⊃ DL ⊃ GenAI ⊃ LLM map as an interactive plotly icicle."""

from __future__ import annotations

import plotly.graph_objects as go

from engine.landscape import HIERARCHY


def hierarchy_figure() -> go.Figure:
    """Nested levels from the post; click a box to zoom into it, hover for the definition and examples."""
    ids = [lv.key for lv in HIERARCHY]
    fig = go.Figure(
        go.Icicle(
            ids=ids,
            labels=[lv.name for lv in HIERARCHY],
            parents=[lv.parent for lv in HIERARCHY],
            customdata=[[lv.definition, lv.examples] for lv in HIERARCHY],
            hovertemplate="<b>%{label}</b><br>%{customdata[0]}<br><i>e.g. %{customdata[1]}</i><extra></extra>",
            texttemplate="<b>%{label}</b><br>%{customdata[0]}",
            tiling=dict(orientation="v"),
            root_color="rgba(0,0,0,0)",
            marker=dict(colorscale="Blues"),
        )
    )
    fig.update_layout(height=460)
    return fig
