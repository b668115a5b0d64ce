"""AppTest: the summarization page (the model's streamed summary, ROUGE against the lead baseline, the blind spots)."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from engine import summarize as sm
from tests.conftest import app_page, assert_no_exception, chart_specs
from tests.conftest import metric_value as _metric

NEWS = next(e for e in sm.examples() if e.key == "news_library")
STORY = next(e for e in sm.examples() if e.key == "story_lighthouse")
SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


@pytest.fixture(scope="module")
def page():
    return app_page("summarization")


def _summary_caption(at) -> str:
    return next(c.value for c in at.caption if "→ summary:" in c.value)


def _rouge_table(at):
    return next(d.value for d in at.dataframe if "candidate" in d.value.columns and "recall" in d.value.columns)


def _shown_summary(at, text: str, length: str = "One sentence", words: int = 30, cap: int = 64) -> str:
    """The summary the page stored for these settings (this process's server-wide store), checked to be on screen."""
    from components import caches
    from components.model import load_model

    stored = caches.finished_summary(load_model(None).key, text, length, words, cap, True)
    assert stored is not None and stored.text in [m.value.strip() for m in at.main.markdown]
    return stored.text


def test_summary_comes_from_the_model_with_its_exact_prompt(page, real_lm):
    assert_no_exception(page)
    prompt = sm.build_prompt(real_lm, NEWS.text, "One sentence", 30, 64)
    expected = "".join(s.text for s in real_lm.generate_stream(list(prompt.ids), 64, fast=True)).strip()
    assert expected and expected in [m.value.strip() for m in page.main.markdown]
    # the exact templated prompt is shown (st.code drops the final line break after “assistant”)
    assert prompt.templated.rstrip("\n") in [c.value for c in page.code]
    caption = _summary_caption(page)
    n_summary = len(real_lm.encode(expected)) + 1  # + the end-of-answer token
    assert f"Your text: **{len(real_lm.encode(NEWS.text)):,} tokens**" in caption
    assert f"**{len(prompt.ids):,} tokens**" in caption
    assert f"summary: **{n_summary} tokens, {len(expected.split())} words**" in caption
    assert "the model ended it itself" in caption


def test_rouge_numbers_equal_an_independent_computation(page):
    summary = _shown_summary(page, NEWS.text)
    table = _rouge_table(page)
    model = SCORER.score(NEWS.reference, summary)
    # lead-N by hand: the news text's first sentence is closest to the summary's length (checked below)
    first = sm.split_sentences(NEWS.text)[0]
    assert abs(len(first.split()) - len(summary.split())) < abs(
        len(" ".join(sm.split_sentences(NEWS.text)[:2]).split()) - len(summary.split()))
    lead = SCORER.score(NEWS.reference, first)
    for name, label in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")):
        for who, expected in (("Model", model[name]), ("Lead", lead[name])):
            row = table[table.metric.str.startswith(label + " ") & table.candidate.str.startswith(who)].iloc[0]
            assert (row.precision, row.recall, row.F1) == pytest.approx(tuple(expected))
    assert _metric(page, "Model ROUGE-L F1") == f"{model['rougeL'].fmeasure:.3f}"
    assert _metric(page, "Lead baseline ROUGE-L F1") == f"{lead['rougeL'].fmeasure:.3f}"
    wins = sum(model[n].fmeasure > lead[n].fmeasure for n in ("rouge1", "rouge2", "rougeL"))
    assert _metric(page, "ROUGE variants the model wins") == f"{wins} of 3"
    said = " ".join(a.value for a in (*page.warning, *page.success, *page.info))
    assert ("The baseline wins" in said) == (wins == 0)
    bars = next(s for s in chart_specs(page) if s["data"][0].get("name") == "Model summary")
    assert bars["data"][0]["y"] == pytest.approx([model[n].fmeasure for n in ("rouge1", "rouge2", "rougeL")])


def test_editing_the_reference_rescores_without_running_the_model(page, real_lm):
    summary = _shown_summary(page, NEWS.text)
    calls = real_lm.stats.forward_calls
    page.text_area(key="sm_ref").set_value(summary).run()  # the summary as its own reference
    assert_no_exception(page)
    assert real_lm.stats.forward_calls == calls
    assert _metric(page, "Model ROUGE-L F1") == "1.000"
    assert "not generated again" in _summary_caption(page)
    page.text_area(key="sm_ref").set_value("你好 😀").run()
    assert any("reference has no words ROUGE can count" in w.value for w in page.warning)
    page.text_area(key="sm_ref").set_value(" ").run()
    assert any("Type a reference summary" in i.value for i in page.info)


def test_blind_spots_are_computed_live(page):
    table = next(d.value for d in page.dataframe if "same meaning" in d.value.columns)
    for _, row in table.iterrows():
        expected = SCORER.score(sm.MISSES_REFERENCE, row.candidate)
        assert row["ROUGE-1 F1"] == pytest.approx(expected["rouge1"].fmeasure)
        assert row["ROUGE-L F1"] == pytest.approx(expected["rougeL"].fmeasure)
    by_kind = table.set_index("kind")
    assert by_kind.loc["Paraphrase, no shared word", "ROUGE-1 F1"] == 0.0
    assert by_kind.loc["Negated", "ROUGE-1 F1"] > 0.8
    assert by_kind.loc["Negated", "BLEU"] > 3 * by_kind.loc["Paraphrase, no shared word", "BLEU"]
    text = next(m.value for m in page.markdown if m.value.startswith("The faithful paraphrase"))
    assert f"BLEU **{by_kind.loc['Negated', 'BLEU']:.1f}**" in text
    assert any(link.proto.page.endswith("evaluation.py") or "evaluation" in link.proto.page
               for link in page.get("page_link"))


def test_picking_an_example_fills_both_boxes_and_summarizes_it():
    at = app_page("summarization", query={"sm_len": "About N words", "sm_words": "10", "sm_cap": "16"})
    at.pills(key="sm_example").set_value(STORY.title).run()
    assert_no_exception(at)
    assert at.text_area(key="sm_text").value == STORY.text
    assert at.text_area(key="sm_ref").value == STORY.reference
    assert any(STORY.source in c.value for c in at.caption)
    code = next(c.value for c in at.code if "<|im_start|>" in c.value)
    assert "Summarize the text above in about 10 words." in code and "Mara" in code
    caption = _summary_caption(at)
    n_tokens = int(caption.split("summary: **")[1].split(" tokens")[0])
    assert n_tokens <= 16 and ("16-token cap" in caption) == (n_tokens == 16)
    assert "(asked for about 10; " in caption
    table = _rouge_table(at)
    summary = _shown_summary(at, STORY.text, "About N words", 10, 16)
    row = table[table.metric.str.startswith("ROUGE-1 ") & table.candidate.str.startswith("Model")].iloc[0]
    assert row.F1 == pytest.approx(SCORER.score(STORY.reference, summary)["rouge1"].fmeasure)


def test_empty_long_and_past_window_texts():
    at = app_page("summarization", query={"sm_text": " "})
    assert_no_exception(at)
    assert any("Type a text to summarize" in i.value for i in at.info)
    assert any("No summary yet" in i.value for i in at.info)
    assert at.dataframe  # the blind-spot section still works
    at = app_page("summarization", query={"sm_text": "word " * 1500})
    assert any("at most 1,024 tokens" in w.value for w in at.warning)
    at = app_page("summarization", query={"sm_text": "All work and no play makes Jack a dull boy. " * 2300})
    assert_no_exception(at)
    assert any("context window of 8,192 tokens" in w.value for w in at.warning)
    assert any("cut to its first 40,000 characters" in c.value for c in at.caption)
