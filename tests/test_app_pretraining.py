"""AppTest: the pretraining page (surprise view, baselines, one gradient step)."""

from __future__ import annotations

import math

import pytest

from components.model import load_model
from engine.scoring import score_text
from tests.conftest import app_page, assert_no_exception, chart_specs
from tests.conftest import html_text as _html
from tests.conftest import metric_value as _metric


@pytest.fixture(scope="module")
def page():
    # its two folded tables open, as a link can open them (closed, they are neither computed nor sent)
    return app_page("pretraining", query={"pt_text": "The capital of France is Paris.", "pt_why_open": "true",
                                          "pt_table_open": "true"})


def test_the_folded_tables_are_computed_only_once_opened(real_lm):
    at = app_page("pretraining", query={"pt_text": "Folded tables wait for a learner to open them."})
    assert_no_exception(at)
    assert not at.dataframe
    before = real_lm.stats.forward_calls
    at.session_state["pt_why_open"] = True
    at.run()
    assert_no_exception(at)
    assert real_lm.stats.forward_calls > before  # the comparison of start tokens ran now, not before
    assert [list(d.value.columns)[0] for d in at.dataframe] == ["before the text"]


def test_scores_match_the_engine_and_baselines_are_ordered(page, real_lm):
    assert_no_exception(page)
    expected = score_text(real_lm, "The capital of France is Paris.")
    assert _metric(page, "Tokens scored") == str(len(expected.tokens))
    assert _metric(page, "Perplexity") == f"{expected.perplexity:,.1f}"
    assert _metric(page, "Average loss") == f"{expected.mean_loss:.2f} nats"
    specs = chart_specs(page)
    token_bars = specs[0]["data"][0]
    assert len(token_bars["y"]) == len(expected.tokens)
    assert token_bars["y"] == pytest.approx([t.loss for t in expected.tokens], abs=1e-6)
    baselines = specs[1]["data"][0]["y"]
    assert baselines[0] == pytest.approx(expected.mean_loss, abs=1e-6)
    assert baselines[0] < baselines[1] < baselines[2]  # natural < shuffled < random tokens
    assert "Paris" in _html(page) and "rank" in _html(page)  # surprise chips with hover details


def test_learning_rate_slider_does_not_rerun_the_model(page):
    lm = load_model("smollm2-135m-instruct")
    before_loss = _metric(page, "Loss before")
    after_default = _metric(page, "Loss after one step")
    calls = lm.stats.forward_calls
    page.select_slider(key="pt_lr").set_value(3.0).run()
    assert_no_exception(page)
    assert lm.stats.forward_calls == calls
    assert _metric(page, "Loss before") == before_loss
    after_big = _metric(page, "Loss after one step")
    assert float(after_big) > float(before_loss) > float(after_default)  # overshoot vs a helpful step
    sweep = next(s for s in chart_specs(page) if s["data"][0]["type"] == "scatter")["data"][0]
    assert sweep["x"] == [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    assert min(sweep["y"]) < float(before_loss) < max(sweep["y"])


def test_hostile_empty_and_long_inputs():
    at = app_page("pretraining", query={"pt_text": "<script>alert(1)</script>\u0000 😀 <b>x</b>", "pt_lr": "banana",
                                          "pt_seed": "-5"})
    assert_no_exception(at)
    html = _html(at)
    assert "<script" not in html and "<b>" not in html
    assert "&lt;" in html and "alert" in html  # the payload is shown as text, token by token
    assert any("Control characters" in c.value for c in at.caption)
    assert at.select_slider(key="pt_lr").value == 0.1  # invalid URL value → default
    at.text_area(key="pt_text").set_value("   ").run()
    at.text_area(key="pt_step").set_value("word " * 20000).run()
    assert_no_exception(at)
    assert any("Type some text" in i.value for i in at.info)
    assert any("keep it under" in w.value for w in at.warning)


def test_shuffle_seed_changes_the_shuffled_text(page):
    a = chart_specs(page)[1]["data"][0]["y"][1]
    page.number_input(key="pt_seed").set_value(7).run()
    assert_no_exception(page)
    b = chart_specs(page)[1]["data"][0]["y"][1]
    assert a != b and math.isfinite(b)


def test_first_token_conditioning_is_named_and_measured(page, real_lm):
    from engine.scoring import conditioning_comparison

    text = "The capital of France is Paris."
    assert any("`<|endoftext|>`" in c.value for c in page.caption)  # the page says which token is used
    table = next(d.value for d in page.dataframe if "before the text" in d.value.columns)
    rows = {r.choice: r for r in conditioning_comparison(real_lm, text)}
    assert list(table["before the text"]) == list(rows)
    assert table["first token's loss (nats)"][0] == pytest.approx(rows["<|endoftext|>"].first_loss)
    assert table["first token's loss (nats)"][0] < table["first token's loss (nats)"][1]  # < <|im_start|>
    # The page's headline perplexity is the first row's: the chosen token is the one the page uses.
    assert _metric(page, "Perplexity") == f"{rows['<|endoftext|>'].perplexity:,.1f}"


def test_pretraining_scale_is_the_published_one_set_against_the_text(page, real_lm):
    from engine.weights import PRETRAINING_FACTS, in_words

    facts = PRETRAINING_FACTS[real_lm.key]
    n = len(score_text(real_lm, "The capital of France is Paris.").tokens)
    scale = next(m.value for m in page.markdown if m.value.startswith("**At real scale.**"))
    assert "2 trillion tokens" in scale and facts.url in scale
    assert f"{in_words(facts.tokens / n)} copies" in scale and f"{n:,}-token" in scale
    assert f"{real_lm.info.parameters:,} parameters" in scale
    assert "Steps: not stated in the source" in scale and "batch size: not stated in the source" in scale
    assert "billions of times" not in scale and "millions of sentences" not in " ".join(m.value for m in page.markdown)


def test_says_the_model_is_instruction_tuned(page, real_lm):
    note = next(i.value for i in page.info if "instruction-tuned" in i.value)
    assert real_lm.info.name in note and "Instruct" in real_lm.info.name


def test_a_new_text_goes_through_the_model_once_for_the_surprise_view_and_the_baselines(real_lm, monkeypatch):
    """Section 2's "Natural text" is section 1's score, not a second pass over the same text: a long text's pass
    takes ~15 s of one core on the project's AVX2 machine (before: two passes, the second for the baselines)."""
    import engine.scoring as scoring

    text = "Every text is read once, and its score is shown twice."
    seen: list[str] = []
    real = scoring.score_checked_text

    def counting(lm, t, *args, **kwargs):
        seen.append(t)
        return real(lm, t, *args, **kwargs)

    monkeypatch.setattr(scoring, "score_checked_text", counting)
    at = app_page("pretraining", query={"pt_text": text})
    assert_no_exception(at)
    assert seen.count(text) == 1, seen
    assert len(seen) == 2  # the natural text, then its shuffled words
    assert chart_specs(at)[1]["data"][0]["y"][0] == pytest.approx(score_text(real_lm, text).mean_loss, abs=1e-6)
