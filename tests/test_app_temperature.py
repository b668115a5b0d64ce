"""AppTest: the temperature page re-shapes cached logits (no model call), and seeded batches reproduce."""

from __future__ import annotations

import pytest
import torch

from components.model import load_model
from engine import sampling
from engine.generation import sample_continuations
from tests.conftest import app_page, assert_no_exception, chart_specs

MODEL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


def open_page(query: dict[str, str] | None = None):
    """The page after one more run (under AppTest the bound prompt box reads empty on the first run after
    ``switch_page``)."""
    at = app_page("temperature", query=query)
    at.run()
    assert_no_exception(at)
    return at


@pytest.fixture(scope="module")
def lm():
    return load_model(MODEL)


@pytest.fixture(scope="module")
def logits(lm):
    return lm.next_token_logits(lm.encode(PROMPT))


def chart(at, key_trace: str) -> list[dict]:
    """Traces of the chart that has a trace whose name starts with ``key_trace``."""
    for spec in chart_specs(at):
        if any(str(d.get("name", "")).startswith(key_trace) for d in spec["data"]):
            return spec["data"]
    raise AssertionError(f"no chart with a trace named {key_trace!r}")


def metric(at, label: str):
    return next(m for m in at.metric if m.label == label)


def test_overlay_and_cuts_come_from_the_real_logits(logits):
    at = open_page()
    order = torch.topk(logits, 15).indices
    overlay = {d["name"]: d["y"] for d in chart(at, "T = 0.5")}
    assert set(overlay) == {"T = 0.5", "T = 1 (slider)", "T = 2"}
    for t, name in [(0.5, "T = 0.5"), (1.0, "T = 1 (slider)"), (2.0, "T = 2")]:
        expected = sampling.softmax_with_temperature(logits, t)[order]
        assert overlay[name] == pytest.approx(expected.tolist(), abs=1e-5)
    assert overlay["T = 0.5"][0] > overlay["T = 1 (slider)"][0] > overlay["T = 2"][0]  # low T sharpens
    cuts = {d["name"]: d for d in chart(at, "kept")}
    assert len(cuts["kept (after temperature)"]["x"]) == 15  # no cut at the defaults
    assert metric(at, "Tokens that can be drawn").value == "49,152"
    assert any("e^{z_i / T}" in latex.value for latex in at.latex)


def test_sliders_reshape_the_cached_distribution_without_running_the_model(lm, logits):
    at = open_page()
    before = lm.stats.forward_calls
    at.slider(key="tmp_t").set_value(1.5).run()
    at.slider(key="tmp_k").set_value(8).run()
    at.slider(key="tmp_p").set_value(0.8).run()
    assert_no_exception(at)
    cut = sampling.apply_cuts(logits, 1.5, 8, 0.8)
    order = torch.topk(logits, 15).indices
    overlay = {d["name"]: d["y"] for d in chart(at, "T = 0.5")}
    assert overlay["T = 1.5 (slider)"] == pytest.approx(cut.scaled[order].tolist(), abs=1e-5)
    traces = {d["name"]: d for d in chart(at, "kept")}
    kept = len(traces["kept (after temperature)"].get("x") or [])
    by_k = len(traces["cut by top-k (after temperature)"].get("x") or [])
    by_p = len(traces["cut by top-p (after temperature)"].get("x") or [])
    assert (kept, by_k, by_p) == (cut.kept, 15 - 8, 8 - cut.kept)
    assert 1 < cut.kept < 8  # the example really exercises both cuts
    diamonds = traces["sampled with (renormalised)"]["y"]
    assert sum(diamonds) == pytest.approx(1.0, abs=1e-5)  # all kept tokens are in the top 15, renormalised
    assert metric(at, "Tokens that can be drawn").value == str(cut.kept)
    assert f"top-k {cut.removed_by_k:.1%}" in metric(at, "Mass cut away").delta
    at.toggle(key="tmp_log").set_value(True).run()
    overlay_spec = next(s for s in chart_specs(at) if s["data"][0].get("name") == "T = 0.5")
    assert overlay_spec["layout"]["yaxis"]["type"] == "log"
    cut_spec = next(s for s in chart_specs(at) if s["data"][0].get("name") == "kept (after temperature)")
    assert cut_spec["layout"]["yaxis"]["type"] == "log"
    at.slider(key="tmp_t").set_value(0.0).run()
    assert metric(at, "Tokens that can be drawn").value == "1"
    assert metric(at, "Entropy after temperature").value == "0.00 bits"
    assert lm.stats.forward_calls == before, "a slider move re-ran the model"


def test_seeded_batch_matches_a_fresh_engine_run_and_the_histogram(lm):
    at = open_page({"tmp_n": "5", "tmp_len": "3", "tmp_seed": "7", "tmp_t": "1.2"})
    before = lm.stats.forward_calls
    at.button(key="tmp_sample").click().run()
    assert_no_exception(at)
    assert lm.stats.forward_calls - before in (0, 3)  # one prompt pass + 2 batched steps (0 if already cached)
    table = at.dataframe[-1].value
    fresh = sample_continuations(lm, lm.encode(PROMPT), 5, 3, temperature=1.2, seed=7)
    assert list(table["continuation"]) == fresh.texts  # same seed, same samples, outside any cache
    hist = {d["name"]: d for d in chart(at, "probability (theory)")}
    theory = hist["probability (theory)"]
    assert theory["y"][0] == pytest.approx(float(fresh.first_probs.max()), abs=1e-4)
    assert sum(hist["share of the 5 samples"]["y"]) == pytest.approx(1.0)
    assert any("5 continuations" in c.value and "tokens/s" in c.value for c in at.caption)
    # moving a slider afterwards keeps the batch on screen, labelled with the settings it was drawn with
    at.slider(key="tmp_t").set_value(0.4).run()
    assert list(at.dataframe[-1].value["continuation"]) == fresh.texts
    assert any("drawn with T = 1.2" in c.value for c in at.caption)


def test_bad_prompt_and_bad_url_values():
    at = open_page({"tmp_t": "banana", "tmp_k": "-5", "tmp_p": "7"})
    assert at.slider(key="tmp_t").value == 1.0
    assert at.slider(key="tmp_k").value == 0
    at.text_area(key="prompt").set_value("").run()
    assert_no_exception(at)
    assert any("Type a prompt" in i.value for i in at.info)
    at.text_area(key="prompt").set_value("<b>bold</b>\x07").run()
    assert_no_exception(at)
    assert any("Control characters" in c.value for c in at.caption)


@pytest.mark.parametrize(("t", "line_start"), [("1.0", "- **T = 1** is the model's **own distribution**"),
                                               ("1.5", "- **High temperature** (above 1)"),
                                               ("0.5", "- **Low temperature**"), ("0.0", "- **Greedy**")])
def test_the_setting_is_marked_in_its_regime_and_t1_is_not_high(t, line_start):
    at = open_page({"tmp_t": t})
    text = next(m.value for m in at.markdown if "Temperature decides which distribution" in m.value)
    marked = [line for line in text.splitlines() if line.endswith("← your setting")]
    assert len(marked) == 1 and marked[0].startswith(line_start)
    high = next(line for line in text.splitlines() if line.startswith("- **High temperature**"))
    assert "(above 1)" in high and "about 1" not in high


def test_effective_choices_are_two_to_the_entropy(lm):
    at = open_page({"tmp_t": "0.7"})
    logits = lm.next_token_logits(lm.encode(PROMPT))
    view = sampling.sampling_view(logits, 0.7, 0, 1.0, 15)
    eff = next(m for m in at.metric if m.label == "Effective choices")
    assert eff.value == f"{view.effective_before:,.1f}" == f"{2 ** view.entropy_before:,.1f}"
