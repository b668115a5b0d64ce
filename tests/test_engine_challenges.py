"""engine.challenges: every "Try it" check on the real model, with one passing and one failing input each."""

from __future__ import annotations

import pytest
import torch

from engine import attention as attn
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


def test_attention_head_checks(real_lm):
    prompt = "The capital of France is"  # 5 tokens
    found = ch.previous_token_head(real_lm, prompt, 16, 0)
    assert found.done and "token just before it (positions 2 to 4)" in found.measured
    assert not ch.previous_token_head(real_lm, prompt, 2, 0).done  # the page's default head
    short = ch.previous_token_head(real_lm, "Paris is", 16, 0)
    assert not short.done and "at least 5" in short.measured  # position 1's previous token is the sink: too few left
    # The share is the mean of the diagonal just below the main one, from position 2 on.
    w = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.1, 0.8, 0.1, 0], [0.6, 0.1, 0.1, 0.2]])
    assert float(attn.previous_token_weight(w, start=2)) == pytest.approx((0.8 + 0.1) / 2)
    assert float(attn.previous_token_weight(w)) == pytest.approx((0.5 + 0.8 + 0.1) / 3)  # the grid's average
    assert float(attn.head_metric(w[None, None], "previous")[0, 0]) == pytest.approx((0.5 + 0.8 + 0.1) / 3)
    focus = ch.focused_head(real_lm, prompt, 23, 4)
    assert focus.done and "' France' (position 3)" in focus.measured
    assert not ch.focused_head(real_lm, prompt, 2, 0).done  # its last token mostly parks on the first token


def test_encoder_checks(real_lm):
    from engine.encoder import load_encoder

    encoder = load_encoder()
    sentences = ["The bank raised its interest rates.", "We had a picnic on the grassy shore of the river.",
                 "The cat sleeps."]
    meaning = ch.meaning_beats_keywords(encoder, "sitting on the bank of a stream", sentences)
    assert meaning.done and "shares bank (rank 2" in meaning.measured  # keywords would pick the money bank
    assert not ch.meaning_beats_keywords(encoder, "river bank", sentences).done  # the money bank ranks first
    defaults = ["A man is playing a guitar.", "Someone is strumming an instrument.", "A cat sleeps on the warm sofa."]
    alone = ch.meaning_beats_keywords(encoder, "music performance", defaults)
    assert not alone.done and "no other sentence does either" in alone.measured  # no decoy: nothing to beat
    assert ch.shared_words("Playing the guitars", "a man plays guitar") == ["guitars", "playing"]
    assert ch.shared_words("the cat", "the category") == []  # "the" is too common; "cat" too short to be a prefix
    assert ch.shared_words("a guitarist strumming", "strums a guitar") == ["guitarist", "strumming"]
    longer = ch.wordpiece_longer(encoder, real_lm, "unbelievably")
    assert longer.done and longer.measured.startswith("WordPiece: 5 (un ##bel ##ie ##va ##bly); byte-level BPE: 4")
    assert not ch.wordpiece_longer(encoder, real_lm, "Ljubljana").done  # 1 WordPiece, 6 BPE tokens
    assert not ch.wordpiece_longer(encoder, real_lm, "unbelievably good").done  # two words


def test_summary_beats_lead():
    from engine import summarize as sm

    ex = next(e for e in sm.examples() if e.key == "news_library")
    lead = sm.lead_baseline(ex.text, len(ex.reference.split())).text
    assert ch.summary_beats_lead(ex.text, ex.reference, ex.reference).done  # the reference itself: ROUGE-L F1 1
    copied = ch.summary_beats_lead(ex.text, lead, ex.reference)
    assert not copied.done and "model" in copied.measured  # the baseline's own text only ties it
    other = ch.summary_beats_lead(ex.text, ex.reference, "A different reference about the library.")
    assert not other.done and "not one of the examples" in other.measured


def test_diffusion_checks():
    from engine import diffusion as dm

    model = dm.load_checkpoint(dm.checkpoint_path("digits"))
    clf, _ = dm.digit_classifier()
    wanted = [d for d in range(10) for _ in range(10)]

    def reading(w: float):
        return dm.recognise(clf, dm.sample(model, list(range(100)), wanted, w).final, wanted)

    unguided, half, strong = reading(0.0), reading(0.5), reading(2.0)
    assert ch.label_ignored(unguided, 0.0).done  # w = 0 ignores the label: near chance
    assert not ch.label_ignored(strong, 2.0).done
    easy = next(d for d, (hit, n) in half.per_class().items() if hit >= 9)
    hard = next(d for d, (hit, n) in half.per_class().items() if hit < 9)
    assert ch.weak_guidance_digit(half, easy, 0.5).done
    assert not ch.weak_guidance_digit(half, hard, 0.5).done
    assert not ch.weak_guidance_digit(strong, easy, 2.0).done  # every digit is read right, but w is too strong


def test_dpo_gentle(real_lm):
    from engine import preference as pref
    from engine.training import new_adapter

    adapter = new_adapter(real_lm, layers=pref.DPO_LAYERS)
    prep = pref.prepare_pairs(real_lm, pref.builtin_set().train[:4], adapter)
    history = list(pref.dpo_steps(real_lm, adapter, prep, steps=5, beta=0.1, lr=5e-3))
    gentle = ch.dpo_gentle(history)  # measured: margin +4.33 → +12.9 nats, KL 0.05
    assert gentle.done and gentle.measured.startswith(f"Margin {history[0].margin:+.2f} → ")
    assert not ch.dpo_gentle(history[:2]).done  # after one step the margin has not grown 5 nats yet
    assert not ch.dpo_gentle(history[:1]).done


def test_overfit_on_purpose(real_lm):
    from engine import datasets as D
    from engine import training as tr

    prep = D.prepare(real_lm, "builtin:room12_qa", b"")  # 16 rows trained on, 4 for validation
    settings = tr.FineTuneSettings(steps=30, lr=3e-2)  # the page's largest learning rate
    run = tr.DatasetRun(settings, prep.train, prep.val, tr.new_adapter(real_lm, settings.rank, settings.layers), None,
                        None, None)
    with tr.exclusive_fine_tune():
        list(tr.train_on_dataset(real_lm, run.adapter, prep.train, prep.val, settings, record=run))
    # Measured: lowest 2.45 at step 10, then 2.57 at step 20 (+5 %) and 3.16 at step 30 (+29 %).
    assert [s for s, _ in run.val_points] == [0, 5, 10, 15, 20, 25, 30]
    over = ch.overfit_on_purpose(run.val_points)
    assert over.done and "at step 10" in over.measured
    assert not ch.overfit_on_purpose(run.val_points[:5]).done  # stopped at step 20: only ~5 % above the lowest
    assert not ch.overfit_on_purpose(run.val_points[:1]).done  # no curve


def test_regression_overfit_and_quiz_checks():
    from engine.ml_basics import regression_demo

    _, _, fit, test_mse = regression_demo(30, 0.5, 12, 0)
    assert ch.regression_overfit(0.5, 12, fit.mse, test_mse).done  # 2.35x the training error
    _, _, fit, test_mse = regression_demo(30, 0.5, 3, 0)
    assert not ch.regression_overfit(0.5, 3, fit.mse, test_mse).done  # 1.59x
    assert not ch.regression_overfit(0.0, 12, 1e-9, 1.0).done  # no noise: nothing to overfit to
    assert ch.quiz_all_right(["a", "b"], ["a", "b"]).done
    assert not ch.quiz_all_right(["a", None], ["a", "b"]).done
    assert not ch.quiz_all_right(["a", "c"], ["a", "b"]).measured.startswith("2")
