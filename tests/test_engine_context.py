"""Engine tests for the context window: truncation, forgetting, cost measurement and sliding-window scoring."""

from __future__ import annotations

import math

import pytest
import torch

from engine import context as ctx
from engine.scoring import score_ids


def test_window_keeps_the_most_recent_tokens():
    view = ctx.apply_window(list(range(10)), 4)
    assert view.kept == (6, 7, 8, 9)
    assert view.dropped == (0, 1, 2, 3, 4, 5)
    assert view.start == 6 and view.overflow
    assert view.in_window == [False] * 6 + [True] * 4


def test_window_boundary_off_by_one():
    ids = [5, 6, 7, 8, 9]
    exact = ctx.apply_window(ids, 5)  # exactly the window: nothing dropped
    assert exact.kept == tuple(ids) and not exact.overflow and exact.dropped == ()
    one_less = ctx.apply_window(ids, 4)  # one token too many: only the oldest goes
    assert one_less.dropped == (5,) and one_less.kept == (6, 7, 8, 9)
    roomy = ctx.apply_window(ids, 100)
    assert roomy.start == 0 and all(roomy.in_window)
    assert ctx.apply_window(ids, 1).kept == (9,)
    assert ctx.apply_window([], 3).kept == ()
    with pytest.raises(ValueError):
        ctx.apply_window(ids, 0)


def test_find_subsequence_and_sweep_sizes():
    assert ctx.find_subsequence([1, 2, 3, 2, 3], [2, 3]) == 1
    assert ctx.find_subsequence([1, 2, 3], [4]) is None
    assert ctx.find_subsequence([1, 2], []) is None
    sizes = ctx.sweep_windows(33)
    assert sizes[0] == 4 and sizes[-1] == 33 and sizes == sorted(set(sizes)) and len(sizes) <= 24
    assert ctx.sweep_windows(3) == [1, 2, 3]


def test_answer_probability_is_the_chain_rule(tiny_lm):
    context = tiny_lm.encode("My name is Ada. What is my name?")
    answer = " Ada Lovelace"
    ans = tiny_lm.encode(answer)
    assert len(ans) >= 2
    logp = torch.log_softmax(tiny_lm.forward(context + ans).logits.double(), dim=-1)
    expected = math.exp(sum(float(logp[len(context) - 1 + k, t]) for k, t in enumerate(ans)))
    assert ctx.answer_probability(tiny_lm, context, answer) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        ctx.answer_probability(tiny_lm, [], answer)


def test_cost_measurement_weighs_real_attention_tensors(tiny_lm):
    points = ctx.measure_cost(tiny_lm, [8, 16], tiny_lm.encode("Hello there."))
    layers, heads = tiny_lm.model.config.num_hidden_layers, tiny_lm.model.config.num_attention_heads
    assert [p.n_tokens for p in points] == [8, 16]
    for p in points:
        assert p.attention_bytes == ctx.attention_bytes(p.n_tokens, layers, heads) == layers * heads * p.n_tokens**2 * 4
        assert p.attention_bytes_per_layer * layers == p.attention_bytes
        assert p.seconds > 0
    assert points[1].attention_bytes == 4 * points[0].attention_bytes  # double T, four times the memory


@pytest.mark.parametrize(("window", "stride"), [(8, 8), (8, 3), (8, 1), (5, 4), (64, 64)])
def test_sliding_window_scores_every_token_once(tiny_lm, window, stride):
    ids = tiny_lm.encode("The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.")
    run = ctx.sliding_window_scores(tiny_lm, ids, window, stride)
    assert [t.position for t in run.tokens] == list(range(1, len(ids)))
    assert [t.token_id for t in run.tokens] == ids[1:]
    assert all(1 <= c <= max(window - 1, stride) for c in run.context)
    if stride == 1:  # every token keeps the longest context the window allows
        assert run.context == [min(p, window - 1) for p in range(1, len(ids))]


def test_sliding_window_matches_direct_scoring(tiny_lm):
    ids = tiny_lm.encode("One, two, three, four, five, six, seven, eight, nine, ten.")
    whole = ctx.sliding_window_scores(tiny_lm, ids, len(ids), len(ids))
    assert whole.forwards == 1 and whole.context == list(range(1, len(ids)))
    assert whole.perplexity == pytest.approx(score_ids(tiny_lm, ids).perplexity, rel=1e-6)
    # Stride 1, window 4: token p is scored from exactly ids[p-3 : p+1].
    run = ctx.sliding_window_scores(tiny_lm, ids, 4, 1)
    p = 9
    direct = score_ids(tiny_lm, ids[p - 3 : p + 1]).tokens[-1]
    assert run.tokens[p - 1].logprob == pytest.approx(direct.logprob, abs=1e-5)
    with pytest.raises(ValueError):
        ctx.sliding_window_scores(tiny_lm, ids, 4, 5)
    with pytest.raises(ValueError):
        ctx.sliding_window_scores(tiny_lm, ids[:1], 4, 2)


def test_real_model_forgets_a_fact_outside_the_window(real_lm):
    text = (
        "My name is Ada. I live in a small town by the sea and I like to read books about science. "
        "What is my name? Answer: Your name is"
    )
    ids = real_lm.encode(text)
    full = ctx.answer_probability(real_lm, ids, " Ada")
    cut = ctx.answer_probability(real_lm, ctx.apply_window(ids, 16).kept, " Ada")
    assert full > 0.1  # observed 0.29
    assert cut < 0.01  # observed 0.0002


@pytest.mark.parametrize(("window", "stride"), [(32, 8), (32, 32), (16, 4)])
def test_batched_windows_give_the_numbers_of_one_pass_per_window(real_lm, window, stride):
    """The passes run in batches of equal-length windows; each token's score equals that of its own window run alone."""
    ids = real_lm.encode(
        "Maria opened a small bakery on the corner of Elm Street. Every morning, Maria baked bread, croissants and a "
        "cinnamon cake that the whole street loved. Her brother Tom helped at the counter. Tom was shy, but he "
        "remembered every customer's order. One winter the oven broke, and Maria called a repairman."
    )
    before = real_lm.stats.forward_calls
    run = ctx.sliding_window_scores(real_lm, ids, window, stride)
    assert real_lm.stats.forward_calls - before == run.forwards  # one pass per window, whether batched or not
    for t, seen in zip(run.tokens, run.context):
        p = t.position
        alone = score_ids(real_lm, ids[p - seen : p + 1]).tokens[-1]  # the token's own window, one forward pass
        assert t.token_id == alone.token_id == ids[p]
        assert t.logprob == pytest.approx(alone.logprob, abs=2e-4)
        assert abs(t.rank - alone.rank) <= (0 if alone.rank < 5 else 1)  # near-ties among low ranks may swap
