"""AppTest: the evaluation page (perplexity, BLEU of the model's translation, what BLEU misses)."""

from __future__ import annotations

import pytest

from engine.evaluation import TASK_TEMPLATE, greedy_generate, sentence_bleu
from engine.scoring import score_text
from engine.text import first_line
from tests.conftest import app_page, assert_no_exception, chart_specs
from tests.conftest import html_text as _html
from tests.conftest import metric_value as _metric


@pytest.fixture(scope="module")
def page():
    return app_page("evaluation")


def test_perplexity_matches_the_engine(page, real_lm):
    assert_no_exception(page)
    a = score_text(real_lm, "The capital of France is Paris. It is famous for the Eiffel Tower.")
    b = score_text(real_lm, "The capital of France is Rome. It is famous for the Eiffel Tower.")
    assert _metric(page, "Perplexity of text A") == f"{a.perplexity:,.2f}"
    assert _metric(page, "Perplexity of text B") == f"{b.perplexity:,.2f}"
    assert a.perplexity < b.perplexity
    assert any("Text **A** has the lower perplexity" in m.value for m in page.markdown)


def test_bleu_of_the_models_translation_matches_sacrebleu(page, real_lm):
    hyp = first_line(greedy_generate(real_lm, TASK_TEMPLATE.format(source="Le chat dort sur le canapé."), 40, True))
    assert hyp and hyp in [c.value for c in page.code]
    refs = ["The cat is sleeping on the sofa.", "The cat sleeps on the couch."]
    expected = sentence_bleu(hyp, refs)
    assert _metric(page, "BLEU") == f"{expected.score:.1f}"
    prec = next(s for s in chart_specs(page) if s["data"][0]["x"] == ["1-gram", "2-gram", "3-gram", "4-gram"])
    assert prec["data"][0]["y"] == pytest.approx([c / t for c, t in zip(expected.counts, expected.totals)])
    assert "#d3f9d8" in _html(page) or "#8ce99a" in _html(page)  # matched words are highlighted


def test_own_candidate_and_references_are_editable(page):
    page.text_area(key="ev_cand").set_value("The cat sleeps on the couch.").run()
    assert_no_exception(page)
    assert _metric(page, "BLEU") == "100.0"
    page.text_area(key="ev_refs").set_value("A feline naps on the settee.").run()
    assert float(_metric(page, "BLEU")) < 20
    page.text_area(key="ev_refs").set_value("  \n ").run()
    assert any("Add at least one reference" in i.value for i in page.info)
    page.text_area(key="ev_refs").set_value("x").run()
    page.text_area(key="ev_cand").set_value("<script>alert(1)</script> x").run()
    assert_no_exception(page)
    html = _html(page)
    assert "<script" not in html and ">&lt;</span>" in html  # the payload is shown as escaped BLEU tokens


def test_bleu_blind_spots_are_computed_live(page):
    spec = next(s for s in chart_specs(page) if s["data"][0].get("orientation") == "h")["data"][0]
    scores = dict(zip([y.split(":")[0] for y in spec["y"]], spec["x"]))
    assert scores["Exact copy"] == pytest.approx(100.0)
    assert scores["Negation"] > 3 * scores["Paraphrase"]
    assert scores["Negation"] == pytest.approx(
        sentence_bleu("The cat is not sitting on the mat.", ["The cat is sitting on the mat."]).score)


def test_empty_and_huge_inputs():
    at = app_page("evaluation", query={"ev_a": " ", "ev_src": "chat " * 20000})
    assert_no_exception(at)
    assert any("Type text A" in i.value for i in at.info)
    assert any("under 400 characters" in w.value for w in at.warning)


def test_perplexity_caption_names_the_start_token_and_the_unit(page, real_lm):
    from engine.scoring import text_start_name

    a = score_text(real_lm, "The capital of France is Paris. It is famous for the Eiffel Tower.")
    cap = next(c.value for c in page.caption if c.value.startswith(f"average loss {a.mean_loss:.3f} nats"))
    assert f"`{text_start_name(real_lm)}`" in cap and text_start_name(real_lm) == "<|endoftext|>"
