"""Engine tests for prompts: the exact chat-template string, label probabilities, few-shot prompts, chat trimming."""

from __future__ import annotations

import math

import pytest
import torch

from engine import ml_basics as mb
from engine import prompting as P
from engine.text import first_line

SMOL_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def test_chat_template_exact_string_tokens_and_specials(tiny_lm):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    out = P.render_chat(tiny_lm, msgs)
    assert out.text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert out.ids == tiny_lm.encode(out.text) and out.n_tokens == len(out.ids)
    assert out.ids[0] == 1  # <|im_start|> is one control token, not 12 characters
    assert sum(out.special) == 5  # three turn openings, two closings
    assert [i for i, s in zip(out.ids, out.special) if s] == [1, 2, 1, 2, 1]
    assert out.default_system is None
    no_gen = P.render_chat(tiny_lm, msgs, add_generation_prompt=False)
    assert out.text.startswith(no_gen.text) and not no_gen.text.endswith("assistant\n")


def test_template_inserts_a_default_system_message(tiny_lm):
    out = P.render_chat(tiny_lm, [{"role": "user", "content": "Hi"}])
    assert out.default_system == SMOL_DEFAULT_SYSTEM
    assert out.text.startswith(f"<|im_start|>system\n{SMOL_DEFAULT_SYSTEM}<|im_end|>")


def test_empty_and_blank_message_lists_are_refused(tiny_lm):
    with pytest.raises(ValueError, match="no messages"):
        P.render_chat(tiny_lm, [])
    with pytest.raises(ValueError):
        P.render_chat(tiny_lm, [{"role": "user", "content": "   "}, {"role": "robot", "content": "x"}])


def test_special_token_text_in_a_message_becomes_a_control_token(tiny_lm):
    out = P.render_chat(tiny_lm, [{"role": "system", "content": "S"}, {"role": "user", "content": "a <|im_end|> b"}])
    assert out.ids.count(2) == 3  # system end, the injected one, user end


def test_label_probabilities_single_and_multi_token(tiny_lm):
    prompt = "Review: great film\nSentiment:"
    labels = (" positive", " negative", " absolutely wonderful")
    scores = P.label_probabilities(tiny_lm, prompt, labels)
    ids = tiny_lm.encode(prompt)
    probs = torch.softmax(tiny_lm.forward(ids).logits[-1].double(), dim=-1)
    assert scores[0].n_tokens == 1 and scores[0].prob == pytest.approx(float(probs[tiny_lm.encode(" positive")[0]]))
    multi = tiny_lm.encode(" absolutely wonderful")
    assert scores[2].n_tokens == len(multi) > 1
    logp = torch.log_softmax(tiny_lm.forward(ids + multi).logits.double(), dim=-1)
    chain = math.exp(sum(float(logp[len(ids) - 1 + k, t]) for k, t in enumerate(multi)))
    assert scores[2].prob == pytest.approx(chain, rel=1e-6)
    assert sum(s.share for s in scores) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        P.label_probabilities(tiny_lm, "", labels)
    with pytest.raises(ValueError):
        P.label_probabilities(tiny_lm, prompt, ())


def test_few_shot_prompt_format():
    instr = P.SENTIMENT_INSTRUCTION
    assert P.few_shot_prompt((), "Bad.") == f"{instr}\n\nReview: Bad.\nSentiment:"  # zero-shot: instruction + input
    two = P.few_shot_prompt((("Good.", "positive"),), "Bad.")
    assert two == f"{instr}\n\nReview: Good.\nSentiment: positive\n\nReview: Bad.\nSentiment:"
    assert P.few_shot_prompt((), "Bad.", instruction="") == "Review: Bad.\nSentiment:"
    assert first_line("\n negative\n\nReview:") == "negative"


def test_zero_shot_is_the_same_on_both_pages_and_differs_from_few_shot_only_by_examples():
    review = "The food was cold."
    zero, few = P.few_shot_prompt((), review), P.few_shot_prompt(P.SENTIMENT_EXAMPLES, review)
    assert mb.sentiment_prompt(review, few_shot=False) == zero  # the ML → LLM page's zero-shot prompt
    assert few.startswith(P.SENTIMENT_INSTRUCTION) and zero.startswith(P.SENTIMENT_INSTRUCTION)
    assert few.replace("".join(f"Review: {x}\nSentiment: {y}\n\n" for x, y in P.SENTIMENT_EXAMPLES), "") == zero


def test_the_instruction_makes_zero_shot_a_fair_baseline(real_lm):
    """Without the instruction, zero-shot barely mentions a label; with it, the model is at least asked the question."""
    review = "I loved this film, the acting was wonderful."
    bare = P.label_probabilities(real_lm, P.few_shot_prompt((), review, instruction=""), P.SENTIMENT_LABELS)
    fair = P.label_probabilities(real_lm, P.few_shot_prompt((), review), P.SENTIMENT_LABELS)
    _, bare_mass = P.label_summary(bare)
    best, fair_mass = P.label_summary(fair)
    assert fair_mass > 3 * bare_mass  # observed 0.29 vs 0.03
    assert best.label.strip().lower() == "positive"


def test_label_summary_picks_the_most_likely_and_sums_the_mass():
    scores = [P.LabelScore(" a", 0.2, 0.4, 1), P.LabelScore(" b", 0.3, 0.6, 1)]
    best, mass = P.label_summary(scores)
    assert best.label == " b" and mass == pytest.approx(0.5)
    with pytest.raises(ValueError):
        P.label_summary([])


def test_trim_history_drops_oldest_turns_and_keeps_system(tiny_lm):
    msgs = [{"role": "system", "content": "S"}]
    for i in range(6):
        msgs += [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": f"answer {i}"}]
    msgs.append({"role": "user", "content": "last"})
    full = P.render_chat(tiny_lm, msgs).n_tokens
    kept, dropped = P.trim_history(tiny_lm, msgs, full)
    assert dropped == 0 and kept == msgs
    kept, dropped = P.trim_history(tiny_lm, msgs, full - 1)
    assert dropped == 1 and kept[0] == msgs[0] and kept[1:] == msgs[2:]
    assert P.render_chat(tiny_lm, kept).n_tokens <= full - 1
    with pytest.raises(ValueError):
        P.trim_history(tiny_lm, msgs, 5)


def test_few_shot_moves_mass_onto_the_right_label(real_lm):
    examples = (
        ("I loved every minute of this film.", "positive"),
        ("The battery died after one day.", "negative"),
        ("Friendly staff and great coffee.", "positive"),
    )
    labels = (" positive", " negative", " Positive", " Negative")
    review = "The food was cold and the waiter ignored us."
    zero = {s.label: s.prob for s in P.label_probabilities(real_lm, P.few_shot_prompt((), review), labels)}
    few = {s.label: s.prob for s in P.label_probabilities(real_lm, P.few_shot_prompt(examples, review), labels)}
    assert few[" negative"] > 0.5 > zero[" negative"]  # observed 0.83 vs 0.01
    assert few[" negative"] > 3 * few[" positive"]
    assert zero[" Negative"] > zero[" negative"]  # zero-shot prefers the capitalised label
