"""Engine: BLEU on known cases (against the formula, not only against sacrebleu), n-gram highlighting, generation."""

from __future__ import annotations

import math

import pytest

from engine.evaluation import bleu_tokens, greedy_generate, sentence_bleu
from engine.text import first_line

REF = "the cat is on the mat"


def test_identical_is_100_and_disjoint_is_near_zero():
    assert sentence_bleu(REF, [REF]).score == pytest.approx(100.0)
    disjoint = sentence_bleu("dogs bark loudly at night", [REF])
    assert disjoint.counts == [0, 0, 0, 0] and disjoint.score < 1.0
    assert disjoint.match_level == [0] * 5


def test_bleu_matches_the_formula_when_every_order_matches():
    # 7 candidate words, all n-gram orders have matches: BLEU = BP · exp(mean log p_n), with BP = 1 (longer).
    res = sentence_bleu("the cat is on the mat today", [REF])
    assert res.counts == [6, 5, 4, 3] and res.totals == [7, 6, 5, 4]
    expected = 100 * math.exp(sum(math.log(c / t) for c, t in zip(res.counts, res.totals)) / 4)
    assert res.brevity_penalty == 1.0
    assert res.score == pytest.approx(expected, abs=1e-6)


def test_brevity_penalty_for_short_candidates():
    res = sentence_bleu("the cat is on", [REF])
    assert (res.hyp_len, res.ref_len) == (4, 6)
    assert res.brevity_penalty == pytest.approx(math.exp(1 - 6 / 4))
    assert res.counts == [4, 3, 2, 1]  # every n-gram matches: only the penalty lowers the score
    assert res.score == pytest.approx(100 * math.exp(1 - 6 / 4), abs=1e-6)


def test_clipping_and_highlight_levels():
    res = sentence_bleu("the the the the", ["the cat"])
    assert res.counts[0] == 1  # "the" counts once: the reference has it once
    assert res.match_level == [1, 0, 0, 0]
    res = sentence_bleu("on the mat the cat sat", [REF])
    assert res.match_level == [3, 3, 3, 2, 2, 0]  # "on the mat" (3-gram), "the cat" (2-gram), "sat" (none)
    for n in range(1, 5):
        assert sum(c for _g, c in res.matched[n]) == res.counts[n - 1]  # the highlight agrees with sacrebleu


def test_more_references_can_only_help_and_tokenisation_is_13a():
    one = sentence_bleu("The cat sleeps on the couch.", ["The cat is sleeping on the sofa."])
    two = sentence_bleu("The cat sleeps on the couch.", ["The cat is sleeping on the sofa.", "The cat sleeps on the couch."])
    assert two.score == pytest.approx(100.0) and one.score < 50
    assert bleu_tokens("Hello, world!") == ["Hello", ",", "world", "!"]


def test_paraphrase_scores_below_meaning_flips():
    ref = ["The cat is sitting on the mat."]
    paraphrase = sentence_bleu("A kitten rests on the rug.", ref).score
    negation = sentence_bleu("The cat is not sitting on the mat.", ref).score
    assert negation > 3 * paraphrase


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="reference"):
        sentence_bleu("hello", ["", "   "])
    with pytest.raises(ValueError, match="empty"):
        sentence_bleu("  ", [REF])
    assert sentence_bleu("<script>x</script>", ["<script>y</script>"]).score > 0


def test_first_line():
    assert first_line("\n\n  The cat sleeps.\nExplanation: ...") == "The cat sleeps."
    assert first_line("   \n") == ""


def test_greedy_generation_chat_vs_raw(real_lm):
    chat = greedy_generate(real_lm, "What is the capital of France?", max_new_tokens=12, chat=True)
    assert "Paris" in chat
    raw = greedy_generate(real_lm, "One, two, three,", max_new_tokens=3, chat=False)
    assert raw.strip().startswith("four")
    assert greedy_generate(real_lm, "One, two, three,", max_new_tokens=3) == raw  # deterministic


def test_lowest_perplexity_names_the_most_predictable_text():
    from engine.evaluation import lowest_perplexity

    assert lowest_perplexity({"A": 12.0, "B": 30.0, "repetitive": 2.5}) == "repetitive"
    assert lowest_perplexity({"A": 5.0, "B": 5.0}) == "A"
    with pytest.raises(ValueError):
        lowest_perplexity({})
