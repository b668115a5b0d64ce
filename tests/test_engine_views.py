"""Engine: the computations that used to live in the Streamlit view modules, tested directly on the tiny model.

The input guard, the one greedy loop (with and without a fine-tuned adapter), the next-token walk, the sampling view
and the first-token histogram, word maps and prompt vectors, long-text runs, baselines and answers, the ML toys, and
the text helpers every view shares.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import context as ctx
from engine import embeddings as emb
from engine import ml_basics as mb
from engine import scoring, training
from engine.evaluation import bleu_or_message, greedy_generate, parse_references
from engine.generation import BatchSample, first_token_histogram, greedy_text
from engine.lm import InputError, check_length, checked_ids, input_problem
from engine.predict import take_step, union_top_ids
from engine.sampling import apply_cuts, entropy_bits, sampling_view, softmax_with_temperature
from engine.text import code_span, first_line, html_escape, md_escape, token_label, visible_whitespace


# ------------------------------------------------------------------------------------------------ the input guard
def test_one_input_guard_one_message_style(tiny_lm):
    ids = checked_ids(tiny_lm, "The capital of France is")
    assert ids == tiny_lm.encode("The capital of France is")
    with pytest.raises(InputError, match="The prompt is empty"):
        checked_ids(tiny_lm, "  \n ")
    with pytest.raises(InputError, match=r"this page reads at most 3 tokens \(why\)\. Shorten it"):
        checked_ids(tiny_lm, "one two three four five", cap=3, why=" (why)")
    with pytest.raises(InputError, match="needs at least 2 tokens"):
        checked_ids(tiny_lm, "Hi", what="fact", at_least=2)
    with pytest.raises(InputError, match="has no tokens"):
        check_length([])
    assert check_length(range(2000), cap=None) == list(range(2000))  # no upper bound: the caller reads a prefix
    assert isinstance(InputError("x"), ValueError)  # pages that catch ValueError keep working
    assert input_problem(tiny_lm, "fine") is None
    assert "is 5 tokens long" in input_problem(tiny_lm, "one two three four five", cap=3)
    assert tiny_lm.key == "tiny-random"


# ------------------------------------------------------------------------------------------------ one greedy loop
def test_greedy_text_and_adapted_greedy_share_the_kv_cached_loop(tiny_lm):
    ids = tiny_lm.encode("One, two, three,")
    steps = list(tiny_lm.generate_stream(ids, 5, temperature=0.0))
    assert greedy_text(tiny_lm, ids, 5) == "".join(s.text for s in steps)
    assert training.adapted_greedy(tiny_lm, None, ids, 5) == [s.token_id for s in steps]
    assert greedy_generate(tiny_lm, "One, two, three,", 5) == greedy_text(tiny_lm, ids, 5)


def test_adapted_greedy_with_kv_cache_matches_full_forwards(tiny_lm):
    """The fine-tuned continuation (KV-cached, weights substituted per step) equals re-running every prefix."""
    adapter = training.new_adapter(tiny_lm, layers=2)
    with torch.no_grad():
        for b in adapter.b.values():  # a non-zero update, so the adapter changes the predictions
            b.normal_(0, 0.5)
    ids = tiny_lm.encode("The capital of France is")
    weights = adapter.weights(tiny_lm)
    expected, seq = [], list(ids)
    for _ in range(6):
        token = int(torch.argmax(training._logits_with(tiny_lm, weights, seq)[-1]))
        expected.append(token)
        seq.append(token)
        if token == tiny_lm.info.eos_token_id:
            break
    assert training.adapted_greedy(tiny_lm, adapter, ids, 6) == expected
    assert training.adapted_greedy(tiny_lm, adapter, ids, 6) != training.adapted_greedy(tiny_lm, None, ids, 6)
    logits = training.adapted_logits(tiny_lm, adapter, ids)  # what the probes read
    assert logits.shape == (len(ids), tiny_lm.vocab_size) and int(logits[-1].argmax()) == expected[0]


# ------------------------------------------------------------------------------------------------ next-token walk
def test_take_step_greedy_sampled_picked(tiny_lm):
    probs = tiny_lm.next_token_probs(tiny_lm.encode("Hello"))
    h = entropy_bits(probs)
    greedy = take_step(tiny_lm, probs, h, "greedy")
    assert greedy.token_id == int(probs.argmax()) and greedy.rank == 1 and greedy.entropy == h
    assert greedy.text == tiny_lm.token_text(greedy.token_id)
    a, b = take_step(tiny_lm, probs, h, "sampled", draw=3), take_step(tiny_lm, probs, h, "sampled", draw=3)
    assert a == b  # the same draw number replays the same token
    third = int(torch.sort(probs, descending=True).indices[2])
    picked = take_step(tiny_lm, probs, h, "picked", third)
    assert picked.rank == 3 and picked.prob == pytest.approx(float(probs[third]))
    with pytest.raises(ValueError):
        take_step(tiny_lm, probs, h, "picked")


def test_union_top_ids_covers_both_tops_and_the_target():
    before = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.05])
    after = torch.tensor([0.05, 0.05, 0.1, 0.3, 0.5])
    assert union_top_ids(before, after, k=2) == [4, 0, 3, 1]  # most likely under either first (ties: after's first)
    assert union_top_ids(before, after, k=1, target=2) == [4, 0, 2]


# ------------------------------------------------------------------------------------------------ sampling view
def test_sampling_view_reshapes_the_logits():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0, -2.0])
    sv = sampling_view(logits, 0.7, top_k=4, top_p=0.8, shown=5)
    cut = apply_cuts(logits, 0.7, 4, 0.8)
    assert sv.order == [0, 1, 2, 3, 4]
    torch.testing.assert_close(sv.cut.final, cut.final)
    assert sv.curves[1.0] == pytest.approx(softmax_with_temperature(logits, 1.0)[:5].tolist())
    assert sv.curves[0.7] == pytest.approx(cut.scaled[:5].tolist())
    assert set(sv.curves) == {0.5, 1.0, 2.0, 0.7}
    assert sv.status[4] == "top-k" and sv.status[0] == "kept"
    assert sv.entropy_before == pytest.approx(entropy_bits(cut.scaled))
    rows = sv.formula_rows(logits, 0.7)
    assert rows[0]["z/T"] == pytest.approx(3.0 / 0.7) and rows[0]["p1"] == pytest.approx(float(torch.softmax(logits, 0)[0]))
    assert sampling_view(logits, 0.0, 0, 1.0, 3).formula_rows(logits, 0.0)[0]["z/T"] == math.inf


def test_first_token_histogram_against_theory():
    theory = torch.tensor([0.6, 0.3, 0.1, 0.0])
    result = BatchSample([1], [[0, 5], [0], [1], [2], [0]], ["a"] * 5, theory, 0.1, 3)
    hist = first_token_histogram(result)
    assert hist.token_ids == [0, 1, 2] and hist.total == 5
    assert hist.empirical == pytest.approx([0.6, 0.2, 0.2]) and hist.expected == pytest.approx([0.6, 0.3, 0.1])
    assert hist.total_variation == pytest.approx(0.5 * (0.0 + 0.1 + 0.1))


# ------------------------------------------------------------------------------------------------ embeddings
def test_word_map_and_its_extremes(tiny_lm):
    words = ["king", "queen", "dog", "cat", "apple"]
    wm = emb.word_map(tiny_lm, words, True, "pca", 2, extra=1)
    assert wm.sims.shape == (5, 5) and np.allclose(np.diag(wm.sims), 1.0, atol=1e-5)
    assert wm.groups[:5] == ["your words"] * 5 and len(wm.labels) == wm.projection.coords.shape[0] > 5
    assert all(g.startswith("near ") for g in wm.groups[5:])
    (i, j), (lo_i, lo_j) = wm.extremes()
    off = wm.sims - 2 * np.eye(5)
    assert i != j and wm.sims[i, j] == pytest.approx(off.max())
    assert wm.sims[lo_i, lo_j] == pytest.approx(wm.sims.min())


def test_prompt_vectors_and_what_the_page_reads(tiny_lm):
    ids = tiny_lm.encode(" the cat and the dog")
    pv = emb.prompt_vectors(tiny_lm, ids)
    L1, T = tiny_lm.info.layers + 1, len(ids)
    assert pv.sims.shape == (L1, T, T) and pv.norms.shape == (L1, T) and pv.total == T
    assert pv.repeated_token() == (0, ids.index(ids[0], 1))  # " the" twice
    i, j = pv.most_similar_pair(1)
    assert i < j and ids[i] != ids[j]
    assert pv.most_similar_pair(1, skip=set(range(T))) is None
    norms = pv.norms[0]
    assert pv.long_vectors(0, factor=0.0) == [(k, pytest.approx(norms[k] / np.median(norms))) for k in range(T)]
    short = emb.prompt_vectors(tiny_lm, list(range(100, 160)), limit=48)
    assert len(short.ids) == 48 and short.total == 60


# ------------------------------------------------------------------------------------------------ context window
def test_long_text_runs_score_the_same_tokens_three_ways(tiny_lm):
    ids = tiny_lm.encode("word " * 40)
    runs = ctx.long_text_runs(tiny_lm, ids, 16, 4)
    chunks, sliding, whole = runs.values()
    assert list(runs)[2] == f"whole text in view ({len(ids)} tokens)"
    assert len(chunks.tokens) == len(sliding.tokens) == len(whole.tokens)
    assert max(sliding.context) <= 16 and whole.forwards == 1 and sliding.forwards > chunks.forwards
    with pytest.raises(ValueError, match="stride cannot be larger"):
        ctx.long_text_runs(tiny_lm, ids, 8, 16)


# ------------------------------------------------------------------------------------------------ scoring
def test_checked_scores_baselines_and_answers(tiny_lm):
    text = "The cat sat on the mat."
    s = scoring.score_checked_text(tiny_lm, text)
    assert len(s.tokens) == len(tiny_lm.encode(text))  # the first token is scored after the start-of-text token
    assert scoring.with_bos(tiny_lm, [5])[-1] == 5
    with pytest.raises(InputError):
        scoring.score_checked_text(tiny_lm, " ")
    b = scoring.baseline_scores(tiny_lm, text, seed=1)
    assert list(b) == ["Natural text", "Same words, shuffled", "Random tokens"]
    assert b["Natural text"][1].mean_loss == pytest.approx(s.mean_loss)
    assert len(b["Random tokens"][1].tokens) == len(s.tokens)
    before = tiny_lm.stats.forward_calls
    given = scoring.baseline_scores(tiny_lm, text, seed=1, natural=s)  # the caller's score: two passes, not three
    assert tiny_lm.stats.forward_calls - before == 2 and given["Natural text"][1] is s
    assert [v[1].mean_loss for v in given.values()] == pytest.approx([v[1].mean_loss for v in b.values()])
    a = scoring.answer_score(tiny_lm, "What is 2+2?", "4")
    assert a.tokens[-1].token_id == tiny_lm.info.eos_token_id  # "…and then stop" is part of the answer
    with pytest.raises(InputError, match="question and answer together"):
        scoring.answer_score(tiny_lm, "word " * 1100, "yes")


# ------------------------------------------------------------------------------------------------ ML toys
def test_ml_demos_and_head_summary(tiny_lm):
    x, y, fit, test_mse = mb.regression_demo(30, 0.3, 3, 0)
    assert len(x) == 30 and fit.degree == 3 and test_mse > 0
    mix, samples = mb.mixture_demo(0.9, 0, 3, 50, 1)
    assert samples.shape == (50, 2) and len(mix.weights) == 3
    head = mb.head_summary(tiny_lm, tiny_lm.encode("Hello there"))
    assert head.weight_shape == (tiny_lm.vocab_size, tiny_lm.info.hidden_size) and head.max_abs_diff < 1e-3
    assert float(head.dist.probs.sum()) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(InputError):
        mb.head_summary(tiny_lm, [])


# ------------------------------------------------------------------------------------------------ text helpers
def test_text_helpers():
    assert first_line("\n\n  The cat sleeps.\nExplanation") == "The cat sleeps." and first_line(" \n") == ""
    assert visible_whitespace("a b\n\t\r") == "a b↵→␍" and visible_whitespace("a b", spaces=True) == "a·b"
    assert token_label(" Paris\n") == "' Paris↵'"
    assert md_escape("[x](y) **b**: 1.") == r"\[x\]\(y\) \*\*b\*\*\: 1\."
    assert md_escape("a\nb") == "a↵b"
    assert html_escape("<b a='1'>") == "&lt;b a=&#x27;1&#x27;&gt;" and html_escape("'", quote=False) == "'"
    assert code_span("a`b") == "`` a`b ``" and code_span("ab") == "`ab`"


def test_bleu_helpers():
    assert parse_references("a\n\n b \n" + "x" * 900)[:2] == ["a", "b"]
    result, message = bleu_or_message("the cat", ["the cat"])
    assert message is None and result.score == pytest.approx(100.0)
    assert bleu_or_message("", ["the cat"])[0] is None
