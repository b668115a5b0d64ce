"""The pure figure, HTML and table builders in ``components/figures``: plain values in, the right picture out.

No Streamlit and no model: each builder is called directly with small hand-made inputs.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from components.figures import bars, base, heatmaps, html, lines, maps, scatter, tables
from engine.attention import GeneratedAttention
from engine.embeddings import Projection
from engine.evaluation import sentence_bleu
from engine.scoring import TextScore, TokenScore
from engine.tokens import TokenPiece


def test_figures_package_is_streamlit_free():
    import subprocess
    import sys

    code = (
        "import sys; import components.figures.bars, components.figures.heatmaps, components.figures.lines, "
        "components.figures.scatter, components.figures.maps, components.figures.html, components.figures.tables, "
        "components.figures.bertviz; print('streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------ labels
def test_labels_are_readable_and_unique():
    assert base.token_labels([" a", " a", "\n"]) == ["' a'", "' a'\u200b", "'↵'"]
    assert base.axis_labels(["x", "x"]) == ["0: 'x'", "1: 'x'"]
    assert base.short_label("abcdefghijk") == "'abcdefg…" and base.short_label("ab") == "'ab'"


# ------------------------------------------------------------------------------------------------ bars
def test_probability_bars_with_the_rest_of_the_vocabulary():
    fig = bars.probability_bars([" Paris", " Lyon"], [0.7, 0.1], other_mass=0.2, highlight=[False, True])
    bar = fig.data[0]
    assert list(bar.y) == ["' Paris'", "' Lyon'", "(all other tokens)"]
    assert list(bar.x) == pytest.approx([0.7, 0.1, 0.2]) and sum(bar.x) == pytest.approx(1.0)
    assert list(bar.marker.color) == [base.ACCENT, base.HIGHLIGHT, base.MUTED]
    assert list(bar.text) == ["70.0%", "10.0%", "20.0%"]


def test_cut_figure_groups_tokens_by_what_cut_them():
    fig = bars.cut_figure(["a", "b", "c"], [0.6, 0.3, 0.1], [0.66, 0.34, 0.0], ["kept", "kept", "top-k"])
    kept, top_k, top_p, final = fig.data
    assert list(kept.x) == ["'a'", "'b'"] and list(top_k.x) == ["'c'"] and len(top_p.x) == 0
    assert list(final.y) == pytest.approx([0.66, 0.34, 0.0])


def test_compare_distributions_marks_the_target():
    fig = bars.compare_distributions_figure([" owl", " purple"], [0.2, 0.001], [0.1, 0.6], [False, True])
    before, after = fig.data
    assert list(before.y) == ["' owl'", "' purple' ★"] and list(after.x) == pytest.approx([0.1, 0.6])


def test_token_loss_figure_draws_the_average():
    score = TextScore([TokenScore(1, 5, "a", math.log(0.5), 1), TokenScore(2, 6, "b", math.log(0.1), 3)])
    fig = bars.token_loss_figure(score)
    assert list(fig.data[0].y) == pytest.approx([-math.log(0.5), -math.log(0.1)])
    assert fig.layout.shapes[0].y0 == pytest.approx(score.mean_loss)


# ------------------------------------------------------------------------------------------------ heatmaps
def test_attention_heatmap_blanks_the_future():
    w = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    z = np.array(heatmaps.attention_heatmap(w, ["a", "b"]).data[0].z, dtype=float)
    assert math.isnan(z[0, 1]) and z[1, 0] == pytest.approx(0.3) and z[1, 1] == pytest.approx(0.7)


def test_generated_heatmap_can_hide_the_sink():
    gen = GeneratedAttention(2, [1, 2, 3], ["a", "b", "c"], [0.9], torch.full((1, 1, 1, 2), 0.5))
    assert len(heatmaps.generated_heatmap(gen, None).data[0].x) == 2
    assert len(heatmaps.generated_heatmap(gen, None, skip_first=True).data[0].x) == 1


def test_cosine_heatmap_annotates_small_matrices():
    fig = heatmaps.cosine_heatmap(["a", "b"], np.array([[1.0, 0.25], [0.25, 1.0]]))
    assert fig.data[0].text[0][1] == "0.25" and list(fig.data[0].x) == ["a", "b"]


# ------------------------------------------------------------------------------------------------ lines
def test_temperature_overlay_highlights_the_slider():
    fig = lines.temperature_overlay_figure(["a", "b"], {0.5: [0.9, 0.1], 1.0: [0.7, 0.3]}, current=1.0)
    names = [t.name for t in fig.data]
    assert names == ["T = 0.5", "T = 1 (slider)"] and fig.data[1].line.width == 4


def test_loss_curve_spans_every_step():
    fig = lines.loss_curve_figure([3.0, 2.0, 1.0], total_steps=5)
    assert list(fig.data[0].y) == [3.0, 2.0, 1.0] and list(fig.layout.xaxis.range) == [0.5, 5.5]


# ------------------------------------------------------------------------------------------------ scatter
def test_projection_figure_labels_the_words_and_greys_neighbours():
    proj = Projection(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), "pca", [0.6, 0.3])
    fig = scatter.projection_figure(proj, ["king", "queen", "'royal'"], ["your words", "your words", "near king"])
    mine, others = fig.data
    assert list(mine.text) == ["king", "queen"] and others.marker.color == base.MUTED
    assert fig.layout.xaxis.title.text == "PC1 (60% of variance)"


# ------------------------------------------------------------------------------------------------ maps and tables
def test_map_outlines_the_selection_and_names_pages():
    fig = maps.map_figure("Icicle", "llm", {"next_token": "Next-token prediction"})
    trace = fig.data[0]
    i = list(trace.ids).index("llm")
    assert trace.marker.line.width[i] == 5 and trace.marker.colors[i] == maps.LIVE
    assert "Next-token prediction" in trace.customdata[i][2]
    assert maps.status_text(()) .startswith("Described only")
    assert set(maps.modality_table("Live here")["In this app"]) == {"Live"}


def test_vector_and_matrix_tables():
    m = torch.arange(12.0).reshape(2, 6)
    df = tables.vector_table(m, ["0: 'a'", "1: 'b'"], show_dims=2)
    assert list(df.columns) == ["dim 0", "dim 1", "… (4 more)"] and df.iloc[1, 1] == 7.0
    assert list(tables.matrix_table(torch.eye(2), ["a", "b"]).columns) == ["a", "b"]
    pieces = [TokenPiece(0, 42, "hi", "hi", 2, False)]
    assert tables.tokens_table(pieces)["kind"].tolist() == ["text"]


# ------------------------------------------------------------------------------------------------ HTML
def test_chips_escape_and_dim():
    out = html.chips_html(["<b>", " x"], [1, 2], dimmed=[False, True], titles=['"t"', "u"])
    assert "&lt;b&gt;" in out and "<b>" not in out and "&quot;t&quot;" in out
    assert out.count("line-through") == 1 and "#dee2e6" in out and ">2</div>" in out
    assert "·" in html.chips_html([" "]) and "∅" in html.chips_html([""])


def test_tokenizer_chips_mark_control_tokens_and_byte_pieces():
    pieces = [TokenPiece(0, 1, "<|im_start|>", "<|im_start|>", 12, True),
              TokenPiece(1, 2, "⟨F0 9F⟩", "ð", 2, False)]
    out = html.token_piece_chips(pieces)
    assert "#343a40" in out and "dashed" in out and "control token" in out and "part of a character" in out
    assert html.token_piece_chips(pieces, limit=1).count("llmx-chip\"") == 1


def test_bleu_highlight_and_surprise_chips():
    result = sentence_bleu("the cat sat", ["the cat slept"])
    out = html.highlight_html(result)
    assert html.MATCH_COLOURS[2] in out and "line-through" in out  # 'the cat' matched, 'sat' not
    score = TextScore([TokenScore(1, 5, "<i>", -12.0, 900)])
    chips = html.surprise_html(score)
    assert "&lt;i&gt;" in chips and "color:#fff" in chips and "rank 900" in chips
    assert html.surprise_colour(0.0) == "rgba(240, 62, 62, 0.06)" and html.surprise_colour(99) == "rgba(240, 62, 62, 0.90)"


def test_continued_text_escapes_both_parts():
    out = html.continued_text_html("<script>", "&")
    assert "&lt;script&gt;" in out and "&amp;" in out and "<script>" not in out


def test_every_builder_returns_a_figure():
    assert isinstance(bars.byte_length_figure({1: 3, 25: 2}), go.Figure)
    assert isinstance(bars.usage_gauge(10_000, 8192), go.Figure) and len(bars.usage_gauge(10_000, 8192).data) == 3
    assert isinstance(maps.modality_figure(), go.Figure) and isinstance(maps.hierarchy_figure(), go.Figure)


def test_classifier_regions_hover_the_classifiers_own_probabilities_compactly():
    """Each background cell's hover is p(class | x) there, as whole percents from the classifier; the chart stays
    small for the browser (one hover string per cell made it 447 KB, the ML→LLM page's slowest part to load)."""
    from engine import ml_basics as mb

    X, y = mb.blobs(60, 0.9, 0)
    clf = mb.fit_softmax_classifier(X, y, 3)
    fig = scatter.classifier_figure(X, y, clf, (0.5, -0.5))
    regions = fig.data[0]
    xs, ys = np.asarray(regions.x), np.asarray(regions.y)
    i, j = 17, 61  # any cell: row i (y), column j (x)
    expected = np.rint(clf.predict_proba(np.array([[xs[j], ys[i]]]))[0] * 100).astype(int).tolist()
    assert list(regions.customdata[i][j]) == expected and sum(expected) in (99, 100, 101)
    assert np.asarray(regions.z)[i, j] == int(np.argmax(expected)) or sorted(expected)[-1] == sorted(expected)[-2]
    assert all(f"{name}: %{{customdata[{k}]}}%" in regions.hovertemplate for k, name in enumerate(mb.CLASS_NAMES))
    assert len(fig.to_json()) < 150_000


# ------------------------------------------------------------------ margins computed from the labels (margins.py)
def _hbar(labels: list[str]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[0.5] * len(labels), y=labels, orientation="h"))
    fig.update_layout(xaxis_tickformat=".0%", xaxis_title="probability")
    return fig


def test_label_margins_hold_the_longest_category_label_at_the_font_size():
    from components.figures.margins import CHAR_EM, label_margins

    short, long = label_margins(_hbar(["'a'", "'b'"]), 12, 14), label_margins(_hbar(["'a'", "'a much longer token'"]), 12, 14)
    assert long["l"] - short["l"] >= math.floor((21 - 3) * CHAR_EM * 12)  # 18 more characters, each ≥ 0.62 em wide
    assert long["l"] >= 21 * 0.5 * 12  # never narrower than the label at half an em per character
    big = label_margins(_hbar(["'a much longer token'"]), 19, 21)  # presentation mode's fonts
    assert big["l"] > long["l"] and big["b"] > long["b"]
    assert short["b"] > label_margins(go.Figure(go.Bar(x=[0.5], y=["a"], orientation="h")), 12, 14)["b"]  # x title


def test_label_margins_leave_to_plotly_what_cannot_be_known_here():
    from components.figures.margins import label_margins

    tokens = go.Figure(go.Heatmap(z=np.ones((2, 2)), x=["'the'", "'cat'"], y=["a", "b"]))  # plotly may rotate x labels
    log = go.Figure(go.Scatter(x=[1, 2], y=[0.1, 10]))
    log.update_yaxes(type="log")
    frames = go.Figure(go.Scatter(x=[1, 2], y=[1, 2]), frames=[go.Frame(data=[go.Scatter(x=[1, 2], y=[2, 1])])])
    from plotly.subplots import make_subplots

    subplots = make_subplots(rows=1, cols=2)
    subplots.add_trace(go.Scatter(x=[1, 2], y=[1, 2]), row=1, col=2)
    for fig in (tokens, log, frames, subplots):
        assert label_margins(fig, 12, 14) is None


def test_numeric_axes_make_room_for_their_widest_tick_label():
    from components.figures.margins import label_margins

    small = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    wide = go.Figure(go.Scatter(x=[0, 1], y=[-12000.0, 35000.0]))
    assert label_margins(wide, 12, 14)["l"] > label_margins(small, 12, 14)["l"]


def test_style_fig_turns_automargin_off_only_where_it_set_the_margins():
    from components.display import style_fig

    styled = style_fig(_hbar(["'Paris'", "'the'"]), 300, False)
    assert styled.layout.xaxis.automargin is False and styled.layout.yaxis.automargin is False
    assert styled.layout.margin.l > 10
    kept = style_fig(go.Figure(go.Heatmap(z=np.ones((2, 2)), x=["'the'", "'cat'"], y=["a", "b"])), 300, False)
    assert kept.layout.xaxis.automargin is None and kept.layout.margin.l == 10  # plotly measures these labels
