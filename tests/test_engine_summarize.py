"""Engine: the summarization prompt, length control, the shared store, ROUGE (against rouge-score itself), the lead
baseline and the metrics' blind spots."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from engine import summarize as sm
from engine.lm import InputError

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_baa0d937dbeabec3.txt"


# ------------------------------------------------------------------------------------------------ examples
def test_examples_ship_three_texts_with_references_and_credit_the_post():
    exs = {e.key: e for e in sm.examples()}
    assert set(exs) == {"news_library", "story_lighthouse", "post_training"}
    for e in exs.values():
        assert len(e.text.split()) > 3 * len(e.reference.split()) > 30
        assert e.source
    post = exs["post_training"]
    assert "Introduction to LLM And GEN AI" in post.source
    if SEED.is_file():  # the words are the post's own (its Markdown stars removed)
        original = SEED.read_text(encoding="utf-8").replace("*", "")
        for sentence in ("Objective: make it follow human instructions rather than just continue text.",
                         "As an ML practitioner, you usually don’t train an LLM — you use one:"):
            assert sentence in post.text and sentence in original


# ------------------------------------------------------------------------------------------------ the prompt
def test_prompt_is_the_chat_template_of_text_then_request(tiny_lm):
    text = "  The cat sat on the mat. It was warm.  "
    p = sm.build_prompt(tiny_lm, text, "One sentence")
    expected = tiny_lm.chat_prompt([{"role": "user", "content": "The cat sat on the mat. It was warm.\n\n"
                                                                 "Summarize the text above in one sentence."}])
    assert p.templated == expected
    assert p.templated.endswith("<|im_start|>assistant\n")  # the assistant's turn is opened for the model
    assert p.templated.index("The cat sat") < p.templated.index("Summarize the text above")
    assert list(p.ids) == tiny_lm.encode(expected)
    assert p.text_tokens == len(tiny_lm.encode(text.strip()))
    assert p.instruction == "Summarize the text above in one sentence."
    words = sm.build_prompt(tiny_lm, text, "About N words", 40)
    assert words.instruction == "Summarize the text above in about 40 words." and words.instruction in words.templated
    assert sm.instruction("About N words", 5) == "Summarize the text above in about 10 words."  # clamped
    with pytest.raises(ValueError):
        sm.instruction("A haiku")


def test_empty_long_and_past_window_texts_get_clear_messages(tiny_lm):
    with pytest.raises(InputError, match="empty"):
        sm.build_prompt(tiny_lm, " \n ", "One sentence")
    long = "word " * 1500
    assert len(tiny_lm.encode(long.strip())) > sm.MAX_SUMMARY_INPUT_TOKENS
    with pytest.raises(InputError, match="at most 1,024 tokens"):
        sm.build_prompt(tiny_lm, long, "One sentence")
    window = tiny_lm.info.context_length
    with pytest.raises(InputError, match=f"context window of {window:,} tokens"):
        sm.build_prompt(tiny_lm, "token " * (window + 10), "One sentence")


# ------------------------------------------------------------------------------------------------ generation
def test_token_cap_is_honoured_and_clamped(tiny_lm):
    assert (sm.clamp_cap(1), sm.clamp_cap(999), sm.clamp_cap(40)) == (sm.MIN_CAP, sm.MAX_CAP, 40)
    prompt = sm.build_prompt(tiny_lm, "A short text about cats and dogs.", "One sentence")
    store = sm.SummaryStore()
    key = ("tiny", "cats", 16)
    eos = tiny_lm.info.eos_token_id
    pieces = list(store.stream(key, lambda: sm.summary_steps(tiny_lm, prompt, 16, False), 16, eos, False))
    summary = store.get(key)
    assert summary is not None and summary.text == "".join(pieces).strip()
    assert summary.n_tokens == 16 or summary.token_ids[-1] == eos  # it runs to the cap unless the model ends it
    # a random tiny model rarely ends its answer: then it must have stopped exactly at the cap, and say so
    assert summary.stopped_at_cap == (summary.n_tokens == 16 and summary.token_ids[-1] != eos)
    steps = list(sm.summary_steps(tiny_lm, prompt, 3, False))  # below the minimum: clamped up to MIN_CAP
    assert len(steps) == sm.MIN_CAP or steps[-1].token_id == eos


def test_store_generates_once_per_key_even_for_concurrent_readers(tiny_lm):
    prompt = sm.build_prompt(tiny_lm, "The library will open late on weekdays.", "One sentence")
    store = sm.SummaryStore()
    key = ("tiny", "library", 24)
    eos = tiny_lm.info.eos_token_id
    before = tiny_lm.stats.forward_calls
    outputs: list[str] = []

    def read():
        outputs.append("".join(store.stream(key, lambda: sm.summary_steps(tiny_lm, prompt, 24, False), 24, eos,
                                            False)).strip())

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    one_run = store.get(key).n_tokens
    assert tiny_lm.stats.forward_calls - before == one_run  # one generation, three readers
    assert outputs == [store.get(key).text] * 3
    again = list(store.stream(key, lambda: pytest.fail("regenerated"), 24, eos, False))
    assert again == [store.get(key).text]


def test_store_forgets_least_recent():
    store = sm.SummaryStore(capacity=2)
    s = sm.Summary("x", (1,), False, 0.1, False)
    for k in ("a", "b"):
        store.put((k,), s)
    store.get(("a",))
    store.put(("c",), s)
    assert store.get(("b",)) is None and store.get(("a",)) is s and store.get(("c",)) is s


def test_a_summary_records_the_path_that_ran_not_the_one_asked_for():
    """A "fast" request made before the 4-bit copy is ready runs in float32: the page must not label it 4-bit."""
    from engine.lm import GenStep

    float32_steps = [GenStep(5, " A", 0.5, 0.01, fast=False), GenStep(0, "", 0.9, 0.02, fast=False)]
    assert sm.finish(float32_steps, 64, 0, True, 0.1).fast is False
    fast_steps = [GenStep(5, " A", 0.5, 0.01, fast=True), GenStep(0, "", 0.9, 0.02, fast=True)]
    assert sm.finish(fast_steps, 64, 0, True, 0.1).fast is True
    assert sm.finish(fast_steps, 64, 0, False, 0.1).fast is True  # what ran, whatever was asked


def test_real_one_sentence_summary_is_one_sentence(real_lm):
    news = next(e for e in sm.examples() if e.key == "news_library")
    prompt = sm.build_prompt(real_lm, news.text, "One sentence", max_new_tokens=64)
    steps = list(sm.summary_steps(real_lm, prompt, 64, True))
    summary = sm.finish(steps, 64, real_lm.info.eos_token_id, True, 0.0)
    assert not summary.stopped_at_cap and steps[-1].token_id == real_lm.info.eos_token_id
    assert len(sm.split_sentences(summary.text)) == 1
    assert "Millbrook" in summary.text  # it summarizes the text it was given


# ------------------------------------------------------------------------------------------------ ROUGE
HAND = [
    ("the cat sat on the mat", "the cat sat"),
    ("Debates were held; the council approved it.", "The council approved the park after a long debate."),
    ("A kitten rests on the rug.", "The cat is sitting on the mat."),
]


@pytest.mark.parametrize(("candidate", "reference"), HAND)
def test_rouge_equals_rouge_scores_own_output(candidate, reference):
    expected = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(reference, candidate)
    got = sm.rouge(candidate, reference)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert (got[name].precision, got[name].recall, got[name].f1) == pytest.approx(tuple(expected[name]))


def test_rouge_by_hand_and_argument_order():
    r = sm.rouge("the cat sat on the mat", "the cat sat")
    # candidate words: the the cat sat on mat (6); reference: the cat sat (3); clipped overlap 3
    assert (r["rouge1"].precision, r["rouge1"].recall) == pytest.approx((3 / 6, 1.0))
    assert (r["rouge2"].precision, r["rouge2"].recall) == pytest.approx((2 / 5, 1.0))  # "the cat", "cat sat"
    assert (r["rougeL"].precision, r["rougeL"].recall) == pytest.approx((3 / 6, 1.0))
    assert r["rouge1"].f1 == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert sm.rouge_tokens("Debates!") == ["debat"]  # stemmed, lower-cased, punctuation dropped


def test_unscorable_texts_say_why():
    with pytest.raises(ValueError, match="reference has no words"):
        sm.rouge("a summary", "你好世界 😀")
    with pytest.raises(ValueError, match="summary has no words"):
        sm.rouge("مرحبا", "a reference")


# ------------------------------------------------------------------------------------------------ baseline
def test_sentence_split_keeps_abbreviations_inside_and_cuts_at_capitals():
    text = ("The library opens until 10 p.m. on weekdays. “It helps,” she said. Costs rose 5.5 percent!\n\n"
            "Next paragraph? Yes.")
    assert sm.split_sentences(text) == ["The library opens until 10 p.m. on weekdays.", "“It helps,” she said.",
                                        "Costs rose 5.5 percent!", "Next paragraph?", "Yes."]


def test_lead_baseline_picks_the_leading_sentences_closest_to_the_length():
    text = "One two three four. Five six seven eight nine ten. Eleven twelve. Thirteen."
    # cumulative words 4, 10, 12, 13
    assert sm.lead_baseline(text, 3).text == "One two three four."
    assert sm.lead_baseline(text, 9).sentences == 2
    assert sm.lead_baseline(text, 7).sentences == 1  # tie (gap 3 and 3) → fewer sentences
    b = sm.lead_baseline(text, 12)
    assert (b.sentences, b.words, b.target_words) == (3, 12, 12)
    assert b.text == "One two three four. Five six seven eight nine ten. Eleven twelve."
    assert sm.lead_baseline(text, 100).sentences == 4
    assert sm.lead_baseline(text, 0).sentences == 1  # never empty
    with pytest.raises(ValueError):
        sm.lead_baseline("   ", 5)


def test_comparison_scores_both_against_the_reference():
    text = "The council met on Monday. It approved the new park after a long debate. Work starts in May."
    reference = "The council approved the new park after a long debate."
    comp = sm.compare_with_lead(text, reference, reference)  # a perfect summary
    assert comp.model["rougeL"].f1 == pytest.approx(1.0)
    assert comp.baseline.text == "The council met on Monday. It approved the new park after a long debate."
    assert comp.lead["rouge1"].f1 == pytest.approx(sm.rouge(comp.baseline.text, reference)["rouge1"].f1)
    assert comp.wins == 3
    worse = sm.compare_with_lead(text, "Work starts in May.", reference)
    assert worse.wins == 0 and worse.baseline.text == "The council met on Monday."


# ------------------------------------------------------------------------------------------------ blind spots
def test_metric_misses_score_as_the_page_claims():
    rows = {r.label: r for r in sm.metric_misses()}
    bleu = BLEU(effective_order=True)
    for r in rows.values():
        assert r.bleu == pytest.approx(bleu.sentence_score(r.text, [sm.MISSES_REFERENCE]).score)
        assert r.rouge1 == pytest.approx(sm.rouge(r.text, sm.MISSES_REFERENCE)["rouge1"].f1)
    assert rows["Exact copy"].rouge1 == pytest.approx(1.0) and rows["Exact copy"].bleu == pytest.approx(100.0)
    para, neg, swap = rows["Paraphrase, no shared word"], rows["Negated"], rows["Roles swapped"]
    assert para.same_meaning and not neg.same_meaning and not swap.same_meaning
    assert para.rouge1 == para.rouge2 == para.rougeL == 0.0 and para.bleu < 10  # same meaning, lowest scores
    assert neg.rouge1 > 0.8 and neg.bleu > 3 * para.bleu  # opposite meaning, high scores
    assert swap.rouge1 == pytest.approx(1.0)  # the same bag of words: ROUGE-1 cannot see the order


def test_figures_show_the_computed_values():
    from components.figures.summaries import misses_figure, misses_table, rouge_figure, rouge_table

    text = "The council met on Monday. It approved the new park after a long debate. Work starts in May."
    comp = sm.compare_with_lead(text, "The council approved a park.", sm.MISSES_REFERENCE)
    table = rouge_table(comp)
    assert len(table) == 6
    row = table[(table.metric.str.startswith("ROUGE-2")) & (table.candidate.str.startswith("Lead"))].iloc[0]
    assert (row.precision, row.recall, row.F1) == pytest.approx(
        (comp.lead["rouge2"].precision, comp.lead["rouge2"].recall, comp.lead["rouge2"].f1))
    fig = rouge_figure(comp)
    assert list(fig.data[0].y) == pytest.approx([comp.model[n].f1 for n in sm.ROUGE_TYPES])
    assert list(fig.data[1].y) == pytest.approx([comp.lead[n].f1 for n in sm.ROUGE_TYPES])
    rows = sm.metric_misses()
    assert list(misses_table(rows)["BLEU"]) == pytest.approx([r.bleu for r in rows])
    assert list(misses_figure(rows).data[0].x) == pytest.approx([r.rouge1 for r in rows])
