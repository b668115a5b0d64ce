"""engine.scoring: which token plain text is conditioned on, measured on the real model, and the caption helpers."""

from __future__ import annotations

import math

import pytest

from engine import scoring
from engine.lm import InputError

PLAIN = ("The capital of France is Paris.", "Once upon a time, there was a little girl.")


def test_plain_text_is_scored_after_endoftext_not_the_chat_marker(real_lm):
    assert scoring.TEXT_START_TOKEN == "<|endoftext|>"
    assert real_lm.info.bos_token == "<|im_start|>"  # the tokenizer's "bos" is the chat-turn marker…
    start = scoring.text_start_id(real_lm)
    assert start == real_lm.token_id("<|endoftext|>") == 0 and start != real_lm.info.bos_token_id  # …not used here
    assert scoring.text_start_name(real_lm) == "<|endoftext|>"
    text = PLAIN[0]
    ids = [start] + real_lm.encode(text)
    assert scoring.with_text_start(real_lm, real_lm.encode(text)) == ids
    first = float(real_lm.next_token_probs([start])[ids[1]])
    # A one-token forward and the whole text's forward take different float32 matrix kernels: on this machine they
    # differ by 1.6e-4 (relative). After the chat marker instead, p(first token) is 22x smaller: 1e-3 still tells.
    assert scoring.score_text(real_lm, text).tokens[0].prob == pytest.approx(first, rel=1e-3)
    chat_marker = float(real_lm.next_token_probs([real_lm.info.bos_token_id])[ids[1]])
    assert scoring.score_text(real_lm, text).tokens[0].prob != pytest.approx(chat_marker, rel=0.5)
    assert scoring.score_checked_text(real_lm, text).perplexity == pytest.approx(
        scoring.score_ids(real_lm, ids).perplexity, rel=1e-9)


@pytest.mark.parametrize("text", PLAIN)
def test_conditioning_comparison_endoftext_beats_im_start(real_lm, text):
    rows = {r.choice: r for r in scoring.conditioning_comparison(real_lm, text)}
    assert list(rows) == ["<|endoftext|>", "<|im_start|>", "none"]
    eot, ims, none = rows["<|endoftext|>"], rows["<|im_start|>"], rows["none"]
    # Observed on "The capital of France is Paris.": first token 5.1 vs 8.2 nats, perplexity 11.8 vs 93.
    assert eot.first_loss < ims.first_loss
    assert eot.perplexity < ims.perplexity
    assert eot.rest_perplexity < ims.rest_perplexity  # the later tokens too, not only the first
    assert eot.rest_perplexity < none.rest_perplexity  # and better than no start token at all
    assert math.isnan(none.first_loss) and none.perplexity == pytest.approx(none.rest_perplexity)
    assert eot.perplexity == pytest.approx(scoring.score_text(real_lm, text).perplexity, rel=1e-9)


def test_conditioning_comparison_reads_a_bounded_prefix(real_lm):
    text = "word " * 300
    rows = scoring.conditioning_comparison(real_lm, text, max_tokens=16)
    prefix = real_lm.decode(real_lm.encode(text)[:16])
    assert rows[0].perplexity == pytest.approx(scoring.score_text(real_lm, prefix).perplexity, rel=1e-6)


def test_conditioning_comparison_needs_two_tokens(real_lm):
    with pytest.raises(InputError):
        scoring.conditioning_comparison(real_lm, "Hi")
    with pytest.raises(InputError):
        scoring.conditioning_comparison(real_lm, "   ")


def test_extremes_and_lowest(tiny_lm):
    score = scoring.score_text(tiny_lm, "Hello world, this is a test.")
    worst, best = scoring.extremes(score)
    assert worst.loss == max(t.loss for t in score.tokens) and best.loss == min(t.loss for t in score.tokens)
    assert scoring.lowest([3.0, 1.0, 2.0, 1.0]) == 1
    with pytest.raises(ValueError):
        scoring.extremes(scoring.TextScore([]))
    with pytest.raises(ValueError):
        scoring.lowest([])
