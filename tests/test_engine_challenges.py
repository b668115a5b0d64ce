"""engine.challenges: every "Try it" check on the real model, with one passing and one failing input each."""

from __future__ import annotations

import pytest

from engine import challenges as ch
from engine import serving
from engine.lm import InputError


def test_every_challenge_has_a_check_in_the_app_and_a_known_page():
    from components.challenges import CHECKS
    from components.frame import PAGES

    ids = [c.id for items in ch.CHALLENGES.values() for c in items]
    assert len(ids) == len(set(ids)) and set(ids) == set(CHECKS)
    stems = {p.stem for p in PAGES}
    assert all(stem in stems and all(c.page == stem for c in items) for stem, items in ch.CHALLENGES.items())
    assert all(1 <= len(items) <= 3 for items in ch.CHALLENGES.values())


def test_next_token_paris(real_lm):
    assert not ch.paris_dethroned(real_lm, "The capital of France is").done  # ' Paris' at 77 %
    assert "' Paris'" in ch.paris_dethroned(real_lm, "The capital of France is").measured
    passed = ch.paris_dethroned(real_lm, "France is a country in")
    assert passed.done and "' Europe'" in passed.measured
    assert not ch.paris_dethroned(real_lm, "The United States of").done  # no France in it


def test_next_token_confident(real_lm):
    assert ch.confident_prompt(real_lm, "The Eiffel Tower is in Paris, the capital of").done  # ' France' ~98 %
    assert not ch.confident_prompt(real_lm, "The capital of France is").done
    with pytest.raises(InputError):
        ch.confident_prompt(real_lm, "   ")


def test_tokenization_checks(real_lm):
    assert ch.long_one_token_word(real_lm, " international").done
    assert not ch.long_one_token_word(real_lm, "supercalifragilistic").done  # 6 tokens
    assert not ch.long_one_token_word(real_lm, " the").done  # one token, too short
    assert not ch.long_one_token_word(real_lm, "<|im_start|>").done  # a control token is not a word
    assert not ch.long_one_token_word(real_lm, " international day").done
    emoji = ch.more_tokens_than_characters(real_lm, "😀")
    assert emoji.done and emoji.measured.startswith("1 character (code points), 3 tokens")
    assert not ch.more_tokens_than_characters(real_lm, "Hello world").done
    assert not ch.more_tokens_than_characters(real_lm, "").done


def test_temperature_checks(real_lm):
    logits = real_lm.next_token_logits(real_lm.encode("The capital of France is"))
    assert not ch.nonsense_temperature(logits, 1.0).done  # ~3 % of draws outside the top 100
    assert ch.nonsense_temperature(logits, 2.0).done  # ~76 %
    assert ch.outside_top_share(logits, 3.0, 1, 1.0) == pytest.approx(0.0)  # top-k 1 keeps only the top token
    assert ch.outside_top_share(logits, 0.0, 0, 1.0) == pytest.approx(0.0)  # greedy
    assert ch.tamed_temperature(logits, 3.0, 1, 1.0).done
    assert not ch.tamed_temperature(logits, 2.0, 5, 1.0).done  # top-k 5 still leaves the top token ~61 %
    assert not ch.tamed_temperature(logits, 1.0, 1, 1.0).done  # temperature too low to count


def test_few_shot_wrong(real_lm):
    assert not ch.few_shot_wrong(real_lm, "The food was cold and the waiter ignored us.", "negative").done
    sarcasm = ch.few_shot_wrong(real_lm, "Oh great, another two-hour wait for cold soup. Just wonderful.", "negative")
    assert sarcasm.done and "few-shot picks positive" in sarcasm.measured
    assert not ch.few_shot_wrong(real_lm, " ", "negative").done


def test_window_recall(real_lm):
    default = ("My name is Ada. I live in a small town by the sea and I like to read books about science. "
               "What is my name? Answer: Your name is")
    assert not ch.window_recall(real_lm, default, 16, "Ada").done  # the name slid out of the window
    assert ch.window_recall(real_lm, "My name is Ada. What is my name? Answer: Your name is", 16, "Ada").done
    assert not ch.window_recall(real_lm, default, 64, "Ada").done  # recalls, but the window is too large to count


def test_analogy_on_top(real_lm):
    assert ch.analogy_on_top(real_lm, "Berlin", "Germany", "France", "Paris").done
    assert not ch.analogy_on_top(real_lm, "Paris", "France", "Italy", "Rome").done  # rank 64
    assert not ch.analogy_on_top(real_lm, "king", "man", "woman", "queen").done  # the page's own example


def test_perplexity_checks(real_lm):
    counting = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15"
    plain = "Large language models are trained to predict the next word."
    assert ch.predictable_text(real_lm, counting).done
    assert not ch.predictable_text(real_lm, plain).done
    assert ch.surprising_text(real_lm, "xq zv blorp fnark quizzle").done
    assert not ch.surprising_text(real_lm, plain).done
    true_a = "The capital of France is Paris. It is famous for the Eiffel Tower."
    assert not ch.b_beats_a(real_lm, true_a, "The capital of France is Rome. It is famous for the Eiffel Tower.").done
    repeated = "The capital of France is London. " * 3
    assert ch.b_beats_a(real_lm, true_a, repeated.strip()).done


def test_serving_checks(real_lm):
    short = serving.serve_chat(real_lm, (("user", "Is the sky blue? Answer yes or no."),), 0.0, 12)
    assert ch.short_stop(short).done and not ch.stopped_for_length(short).done
    cut = serving.serve_chat(real_lm, (("user", "What is the capital of France?"),), 0.0, 2)
    assert ch.stopped_for_length(cut).done and not ch.short_stop(cut).done
