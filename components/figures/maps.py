"""The generative-AI map: the field's hierarchy (icicle, sunburst, nested boxes) and the modalities (pure plotly).

Functions that name pages take ``titles`` (page stem → title, from :func:`components.frame.page_titles`).
"""

from __future__ import annotations

import textwrap

import pandas as pd
import plotly.graph_objects as go

from engine.landscape import HIERARCHY, MODALITIES, Family


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


LIVE = "#2f9e44"  # demonstrated live in this app


DESCRIBED = "#ced4da"  # described only


SELECTED = "#f76707"


VIEWS = ("Icicle", "Sunburst", "Nested boxes")


def status_text(pages: tuple[str, ...], titles: dict[str, str] | None = None) -> str:
    """"Live here: …" with page titles (``stem → title``), or "Described only"."""
    if not pages:
        return "Described only: no model of this kind runs in this app"
    return "Live here: " + ", ".join((titles or {}).get(s, s) for s in pages)


def map_figure(view: str = "Icicle", selected: str | None = None, titles: dict[str, str] | None = None) -> go.Figure:
    """The hierarchy as an icicle, a sunburst or nested boxes (treemap: each box sits inside its parent, a subset).

    Boxes the app demonstrates live are green, described-only ones grey; ``selected`` gets an orange outline.
    """
    levels = HIERARCHY
    # Box sizes: leaves get a weight, parents hold the sum of their children ("total"). The LLM branch, the one this
    # app demonstrates, gets half of generative AI so its labels stay readable.
    weight = {"traditional": 2.0, "llm": 3.0, "code": 1.0, "image": 1.0, "audio": 1.0, "video": 1.0, "3d": 1.0}

    def total(key: str) -> float:
        return weight.get(key, 0.0) + sum(total(lv.key) for lv in levels if lv.parent == key)

    common = dict(
        values=[total(lv.key) for lv in levels],
        branchvalues="total",
        ids=[lv.key for lv in levels],
        labels=[lv.name for lv in levels],
        parents=[lv.parent for lv in levels],
        customdata=[[lv.definition, lv.examples, status_text(lv.pages, titles)] for lv in levels],
        hovertemplate="<b>%{label}</b><br>%{customdata[0]}<br><i>e.g. %{customdata[1]}</i><br>%{customdata[2]}"
        "<extra></extra>",
        marker=dict(
            colors=[LIVE if lv.pages else DESCRIBED for lv in levels],
            line=dict(color=[SELECTED if lv.key == selected else "white" for lv in levels],
                      width=[5 if lv.key == selected else 1 for lv in levels]),
        ),
        textfont=dict(color="#1a1a1a"),
    )
    if view == "Sunburst":
        trace = go.Sunburst(**common, texttemplate="<b>%{label}</b>", insidetextorientation="horizontal")
        height = 560
    elif view == "Nested boxes":
        trace = go.Treemap(**common, texttemplate="<b>%{label}</b><br>%{customdata[0]}", tiling=dict(pad=4),
                           root_color="rgba(0,0,0,0)")
        height = 520
    else:
        trace = go.Icicle(**common, texttemplate="<b>%{label}</b><br>%{customdata[0]}", tiling=dict(orientation="v"),
                          root_color="rgba(0,0,0,0)")
        height = 480
    fig = go.Figure(trace)
    fig.update_layout(height=height, margin=dict(t=10, l=10, r=10, b=10))
    return fig


def modality_figure(titles: dict[str, str] | None = None) -> go.Figure:
    """Generative AI → domain → model family, as a sunburst; live domains green, described ones grey."""
    ids, labels, parents, colours, hover = ["genai"], ["Generative AI"], [""], ["#e9ecef"], ["Any AI that creates new data"]
    for m in MODALITIES:
        dom = f"d:{m.domain}"
        ids.append(dom)
        labels.append(m.domain)
        parents.append("genai")
        colours.append(LIVE if m.live_here else DESCRIBED)
        hover.append(f"{m.family}<br>e.g. {m.examples}<br>{status_text(m.pages, titles) if m.live_here else status_text(())}")
        for fam in m.families:
            ids.append(f"{dom}/{fam.name}")
            labels.append(fam.name)
            parents.append(dom)
            colours.append("#b2f2bb" if m.family_live(fam) else "#f1f3f5")
            hover.append(_wrap(fam.how) + f"<br><i>e.g. {fam.examples or m.examples}</i>")
    fig = go.Figure(
        go.Sunburst(ids=ids, labels=labels, parents=parents, marker=dict(colors=colours, line=dict(color="white")),
                    customdata=hover, hovertemplate="<b>%{label}</b><br>%{customdata}<extra></extra>",
                    insidetextorientation="radial", textfont=dict(color="#1a1a1a"))
    )
    fig.update_layout(height=520, margin=dict(t=10, l=10, r=10, b=10))
    return fig


def _wrap(text: str, width: int = 60) -> str:
    """Break a hover text into lines of about ``width`` characters (plotly does not wrap hover labels)."""
    return "<br>".join(textwrap.wrap(text, width))


def modality_table(show: str = "All") -> pd.DataFrame:
    """The modality table, one row per model family; ``show`` is "All", "Live here" or "Described only"."""
    rows = []
    for m in MODALITIES:
        for fam in m.families or (Family(m.family, ""),):
            live = m.family_live(fam)
            if (show == "Live here" and not live) or (show == "Described only" and live):
                continue
            rows.append(
                {
                    "Domain": m.domain,
                    "Model family": fam.name,
                    "How it generates": fam.how,
                    "Examples": fam.examples or m.examples,
                    "In this app": "Live" if live else "Described only",
                }
            )
    return pd.DataFrame(rows, columns=["Domain", "Model family", "How it generates", "Examples", "In this app"])
