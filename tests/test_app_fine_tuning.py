"""AppTest: the fine-tuning page (live LoRA fine-tune, reset, busy lock), instruction tuning, preference pair."""

from __future__ import annotations

import pytest

from components.model import load_model
from components.state import FT_STATE
from engine.evaluation import greedy_generate
from engine.training import FINE_TUNE_LOCK, weights_fingerprint
from tests.conftest import app_page, assert_no_exception, chart_specs

QUERY = {"ft_steps": "15", "ft_lr": "0.01"}


def _spec(at, title_part=None, kind=None):
    for s in chart_specs(at):
        names = [d.get("name") for d in s["data"]]
        if kind == "compare" and "after fine-tuning" in names:
            return s
        if kind == "before_only" and names == ["original model", "after fine-tuning"] and s["data"][0]["x"] == s[
            "data"
        ][1]["x"]:
            return s
    return None


def _prob_of(spec, series, label_start):
    data = next(d for d in spec["data"] if d["name"] == series)
    i = next(i for i, y in enumerate(data["y"]) if y.startswith(label_start))
    return data["x"][i]


@pytest.fixture(scope="module")
def page():
    return app_page("fine_tuning", query=QUERY)


def test_fine_tune_teaches_the_fact_then_reset_restores(page, real_lm):
    assert_no_exception(page)
    lm = load_model("smollm2-135m-instruct")
    fingerprint = weights_fingerprint(lm)
    before_spec = chart_specs(page)[0]
    p_before = _prob_of(before_spec, "original model", "' purple' ★")
    assert p_before < 0.01
    page.button(key="ft_train").click().run()
    assert_no_exception(page)
    run = page.session_state[FT_STATE]
    assert len(run.losses) == 15 and run.losses[-1] < 0.5 * run.losses[0]
    compare = _spec(page, kind="compare")
    p_after = _prob_of(compare, "after fine-tuning", "' purple' ★")
    assert p_after > 0.3 and p_after > 100 * p_before
    assert _prob_of(compare, "original model", "' purple' ★") == pytest.approx(p_before)
    curve = next(s for s in chart_specs(page) if s["data"][0]["type"] == "scatter")["data"][0]
    assert curve["y"] == pytest.approx(run.losses)
    codes = [c.value for c in page.code]
    assert any(c.startswith("Our class mascot is a purple") for c in codes)  # fine-tuned continuation
    assert weights_fingerprint(lm) == fingerprint  # the shared model never changed
    assert any(m.label == "Weights trained" and m.value == "33,792" for m in page.metric)

    page.button(key="ft_reset").click().run()
    assert_no_exception(page)
    assert FT_STATE not in page.session_state
    assert _spec(page, kind="compare")["data"][0]["x"] == _spec(page, kind="compare")["data"][1]["x"]


def test_busy_server_refuses_a_second_fine_tune(page):
    FINE_TUNE_LOCK.acquire()
    try:
        page.button(key="ft_train").click().run()
    finally:
        FINE_TUNE_LOCK.release()
    assert_no_exception(page)
    assert any("Busy" in w.value and "Another fine-tune" in w.value for w in page.warning)
    assert FT_STATE not in page.session_state


def test_chat_template_answers_and_raw_text_continues(page, real_lm):
    codes = [c.value for c in page.code]
    request = "Give me three tips for studying."
    chat = greedy_generate(real_lm, request, 40, chat=True)
    assert chat in codes  # the answer shown is the model's own greedy output
    raw_shown = next(c for c in codes if c.startswith(request))
    assert len(raw_shown) > len(request) + 20 and chat not in raw_shown  # raw text continues, differently
    assert any("<|im_start|>assistant" in c for c in codes)  # the template is shown


def test_preference_pair_is_scored_by_likelihood_without_rerunning(page):
    lm = load_model("smollm2-135m-instruct")
    pref = next(s for s in chart_specs(page) if s["data"][0].get("x") == ["Answer A", "Answer B"])["data"][0]
    assert pref["y"][0] > pref["y"][1]  # the helpful answer is likelier
    calls = lm.stats.forward_calls
    page.radio(key="ft_pick").set_value("B").run()
    assert lm.stats.forward_calls == calls  # changing the human's pick only re-renders
    assert any("disagrees" in m.value for m in page.markdown)
    assert any("not a reward model" in m.value for m in page.markdown)


def test_bad_inputs_give_messages():
    at = app_page("fine_tuning", query={"ft_text": "word " * 200, "ft_steps": "999", "ft_lr": "7"})
    assert_no_exception(at)
    assert at.slider(key="ft_steps").value == 20 and at.select_slider(key="ft_lr").value == 0.003
    assert any("keep it under" in i.value for i in at.info)
    assert at.button(key="ft_train").disabled
    at.text_area(key="ft_text").set_value("<img src=x onerror=alert(1)>\x00").run()
    at.text_area(key="ft_pa").set_value("").run()
    assert_no_exception(at)
    assert not at.button(key="ft_train").disabled
    assert any("two answers" in i.value for i in at.info)
