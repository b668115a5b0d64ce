"""The encoders page's pure figure and HTML builders: measured values drawn as they are, user text escaped."""

from __future__ import annotations

import numpy as np

from components.figures.heatmaps import readers_figure, weights_heatmap
from components.figures.html import wordpiece_chips_html
from components.figures.lines import training_loss_figure


def test_weights_heatmap_draws_every_cell():
    w = np.array([[0.5, 0.5], [0.0, 1.0]])
    fig = weights_heatmap(w, ["a", "a"], ["x", "y"], "t")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.array_equal(z, w) and not np.isnan(z).any()  # a measured 0 stays a 0, nothing is masked
    assert len(set(fig.data[0].y)) == 2  # repeated labels kept apart


def test_readers_figure_one_panel_per_model():
    causal = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    full = np.full((4, 4), 0.25)
    fig = readers_figure([("dec", causal, ["a", "b", "c"]), ("enc", full, ["[CLS]", "a", "b", "[SEP]"])])
    assert len(fig.data) == 2 and [fig.layout.xaxis.title.text, fig.layout.xaxis2.title.text] == ["<b>dec</b>", "<b>enc</b>"]
    assert np.allclose(np.asarray(fig.data[1].z, dtype=float), full)
    assert fig.data[1].x[0] == "0: '[CLS]'"


def test_wordpiece_chips_escape_and_mark_pieces():
    html = wordpiece_chips_html(["[CLS]", "<script>", "##ing", "[SEP]"], [101, 1, 2, 102])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("dashed") == 1 and "101" in html and "continues the word before" in html


def test_training_loss_figure():
    fig = training_loss_figure([3.0, 1.0, 0.1], 10)
    assert list(fig.data[0].y) == [3.0, 1.0, 0.1] and fig.layout.xaxis.range[1] == 10.5
