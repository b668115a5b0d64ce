"""Sampling math against hand-computed examples, batched seeded sampling, probes and the chain rule."""

from __future__ import annotations

import math

import pytest
import torch

from engine import sampling
from engine.generation import MAX_BATCH_TOKEN_SLOTS, max_samples_for, sample_continuations
from engine.predict import continuation_probs, probe, rank_of

# logits = log(p) so that softmax(logits / 1) = p exactly, and softmax(logits / T) ∝ p ** (1 / T)
P4 = torch.tensor([0.1, 0.2, 0.3, 0.4])
L4 = torch.log(P4)


def _idx(mask: torch.Tensor) -> list[int]:
    return [int(i) for i in torch.nonzero(mask).flatten()]


# ------------------------------------------------------------------------------------------------ temperature
def test_temperature_one_returns_the_model_distribution():
    torch.testing.assert_close(sampling.softmax_with_temperature(L4, 1.0), P4)


def test_temperature_half_squares_and_two_square_roots():
    # p ** (1/T): T = 0.5 -> p² / Σp² = [1, 4, 9, 16] / 30
    torch.testing.assert_close(sampling.softmax_with_temperature(L4, 0.5), torch.tensor([1, 4, 9, 16]) / 30.0)
    root = torch.sqrt(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(sampling.softmax_with_temperature(L4, 2.0), root / root.sum())


def test_temperature_zero_is_greedy_and_splits_ties():
    assert sampling.softmax_with_temperature(L4, 0.0).tolist() == [0.0, 0.0, 0.0, 1.0]
    tied = sampling.softmax_with_temperature(torch.tensor([1.0, 3.0, 3.0]), 0.0)
    assert tied.tolist() == [0.0, 0.5, 0.5]


def test_very_high_temperature_approaches_uniform_and_entropy_rises():
    flat = sampling.softmax_with_temperature(L4, 1e6)
    torch.testing.assert_close(flat, torch.full((4,), 0.25), atol=1e-5, rtol=0)
    entropies = [sampling.entropy_bits(sampling.softmax_with_temperature(L4, t)) for t in (0.0, 0.5, 1.0, 2.0, 1e6)]
    assert entropies == sorted(entropies)
    assert entropies[0] == 0.0 and entropies[-1] == pytest.approx(2.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------ top-k / top-p
def test_top_k_keeps_the_k_largest():
    probs = torch.tensor([0.1, 0.4, 0.2, 0.3])
    assert _idx(sampling.top_k_mask(probs, 2)) == [1, 3]
    assert _idx(sampling.top_k_mask(probs, 1)) == [1]


def test_top_k_off_and_larger_than_vocabulary_keep_everything():
    probs = torch.tensor([0.1, 0.4, 0.2, 0.3])
    for k in (0, -3, 4, 5, 10**9):
        assert sampling.top_k_mask(probs, k).all(), k


def test_top_k_ties_keep_lower_ids():
    assert _idx(sampling.top_k_mask(torch.tensor([0.1, 0.3, 0.3, 0.3]), 2)) == [1, 2]


def test_top_p_hand_examples_and_boundaries():
    probs = torch.tensor([0.5, 0.3, 0.2])
    assert _idx(sampling.top_p_mask(probs, 0.8)) == [0, 1]  # 0.5 + 0.3 reaches 0.8 exactly: no third token
    assert _idx(sampling.top_p_mask(probs, 0.81)) == [0, 1, 2]
    assert _idx(sampling.top_p_mask(probs, 0.5)) == [0]
    assert _idx(sampling.top_p_mask(probs, 0.49)) == [0]
    assert _idx(sampling.top_p_mask(probs, 0.0)) == [0]  # the top token always survives
    assert sampling.top_p_mask(probs, 1.0).all()
    assert sampling.top_p_mask(probs, 1.5).all()


def test_top_p_ties_are_taken_in_id_order():
    uniform = torch.full((4,), 0.25)
    assert _idx(sampling.top_p_mask(uniform, 0.5)) == [0, 1]
    assert _idx(sampling.top_p_mask(uniform, 0.6)) == [0, 1, 2]


def test_cuts_apply_top_p_to_the_renormalised_top_k():
    # top-k = 2 keeps 0.4 and 0.3 (removes 0.3); renormalised they are 4/7 and 3/7. top-p = 0.5 is reached by 4/7
    # alone, so top-p removes 0.3 more. (Measured on the original distribution top-p would have kept both.)
    cut = sampling.apply_cuts(L4, 1.0, 2, 0.5)
    assert _idx(cut.keep_k) == [2, 3] and _idx(cut.keep_p) == [3]
    assert cut.removed_by_k == pytest.approx(0.3, abs=1e-6)
    assert cut.removed_by_p == pytest.approx(0.3, abs=1e-6)
    assert cut.final.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert cut.kept == 1


def test_cuts_renormalise_what_is_kept():
    cut = sampling.apply_cuts(L4, 1.0, 3, 0.6)  # top-3: .2 .3 .4 -> renormalised .222 .333 .444 -> top-p keeps 2
    assert _idx(cut.keep_p) == [2, 3]
    torch.testing.assert_close(cut.final, torch.tensor([0.0, 0.0, 3 / 7, 4 / 7]))
    assert cut.removed_by_k == pytest.approx(0.1, abs=1e-6)
    assert cut.removed_by_p == pytest.approx(0.2, abs=1e-6)
    torch.testing.assert_close(sampling.filtered_distribution(L4, 1.0, 3, 0.6), cut.final)


def test_cuts_off_change_nothing_and_greedy_ignores_them():
    cut = sampling.apply_cuts(L4, 1.0, 0, 1.0)
    torch.testing.assert_close(cut.final, P4)
    assert cut.removed_by_k == 0.0 and cut.removed_by_p == 0.0 and cut.kept == 4
    for k, p in [(0, 1.0), (1, 0.1), (10, 0.9)]:
        assert sampling.filtered_distribution(L4, 0.0, k, p).tolist() == [0.0, 0.0, 0.0, 1.0]


def test_entropy_and_effective_choices():
    assert sampling.entropy_bits(torch.full((4,), 0.25)) == pytest.approx(2.0)
    assert sampling.effective_choices(torch.full((8,), 0.125)) == pytest.approx(8.0)
    assert str(sampling.entropy_bits(torch.tensor([1.0, 0.0, 0.0]))) == "0.0"  # not "-0.0"
    assert sampling.effective_choices(torch.tensor([1.0, 0.0])) == pytest.approx(1.0)
    expected = -(0.1 * math.log2(0.1) + 0.2 * math.log2(0.2) + 0.3 * math.log2(0.3) + 0.4 * math.log2(0.4))
    assert sampling.entropy_bits(P4) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(1.0, 0, 1.0), (0.8, 40, 0.9), (1.5, 3, 0.5), (0.0, 5, 0.2), (2.0, 10**6, 0.99)]
)
def test_batched_cuts_equal_the_row_by_row_rules(temperature, top_k, top_p):
    torch.manual_seed(0)
    logits = torch.randn(6, 5000) * 3
    logits[1] = 0.0  # every token tied
    logits[2, :10] = 9.0  # a tie at the top
    batched = sampling.filtered_distribution_batch(logits, temperature, top_k, top_p)
    rows = torch.stack([sampling.filtered_distribution(r, temperature, top_k, top_p) for r in logits])
    torch.testing.assert_close(batched, rows, atol=1e-6, rtol=0)
    assert torch.equal(batched > 0, rows > 0)  # the same tokens survive, ties included


def test_batched_cuts_hand_example():
    rows = torch.stack([L4, L4.flip(0)])  # the second row is the first reversed
    out = sampling.filtered_distribution_batch(rows, 1.0, 3, 0.6)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 3 / 7, 4 / 7], [4 / 7, 3 / 7, 0.0, 0.0]]))


# ------------------------------------------------------------------------------------------------ drawing tokens
def test_seeded_draws_repeat_and_follow_the_distribution():
    rows = P4.expand(20_000, -1)  # 20,000 independent draws through the app's own chooser
    a = sampling.choose(rows, 1.0, torch.Generator().manual_seed(5)).tolist()
    b = sampling.choose(rows, 1.0, torch.Generator().manual_seed(5)).tolist()
    c = sampling.choose(rows, 1.0, torch.Generator().manual_seed(6)).tolist()
    assert a == b and a != c
    shares = torch.bincount(torch.tensor(a), minlength=4).double() / len(a)
    torch.testing.assert_close(shares, P4.double(), atol=0.015, rtol=0)
    assert sampling.choose(P4[None][:0], 1.0).tolist() == []


def test_choose_is_arg_max_per_row_at_zero_temperature():
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert sampling.choose(probs, 0.0).tolist() == [1, 0]
    assert sampling.choose(torch.tensor([[0.0, 1.0, 0.0]]), 1.0, torch.Generator().manual_seed(0)).tolist() == [1]


# ------------------------------------------------------------------------------------------------ batched sampling
def test_batch_is_reproducible_with_a_seed_and_uses_one_batch(tiny_lm):
    ids = tiny_lm.encode("Once upon a time")
    before = tiny_lm.stats.forward_calls
    a = sample_continuations(tiny_lm, ids, 6, 5, temperature=1.0, seed=11, stop_at_eos=False)
    assert tiny_lm.stats.forward_calls - before == 5  # 1 prompt pass + 4 batched steps, not 6 × 5
    assert a.forwards == 5 and len(a.token_ids) == 6 and all(len(t) == 5 for t in a.token_ids)
    b = sample_continuations(tiny_lm, ids, 6, 5, temperature=1.0, seed=11, stop_at_eos=False)
    c = sample_continuations(tiny_lm, ids, 6, 5, temperature=1.0, seed=12, stop_at_eos=False)
    assert a.token_ids == b.token_ids and a.texts == b.texts
    assert a.token_ids != c.token_ids
    assert len({tuple(t) for t in a.token_ids}) > 1  # a random model at T = 1: the rows differ


def test_batch_first_distribution_matches_a_single_forward(tiny_lm):
    ids = tiny_lm.encode("The capital of France is")
    res = sample_continuations(tiny_lm, ids, 3, 1, temperature=0.7, top_k=20, top_p=0.9, seed=0)
    expected = sampling.filtered_distribution(tiny_lm.next_token_logits(ids), 0.7, 20, 0.9)
    torch.testing.assert_close(res.first_probs, expected, atol=1e-5, rtol=0)
    assert all(float(expected[t]) > 0 for t in res.first_tokens)  # never a token the cuts removed


def test_batch_greedy_rows_equal_greedy_generation(tiny_lm):
    ids = tiny_lm.encode("A B C")
    res = sample_continuations(tiny_lm, ids, 3, 6, temperature=0.0, stop_at_eos=False)
    single = [s.token_id for s in tiny_lm.generate_stream(ids, 6, temperature=0.0, stop_at_eos=False)]
    assert res.token_ids == [single] * 3


def test_batch_size_is_capped_by_memory_budget(tiny_lm):
    assert max_samples_for(10, 10) == 64
    assert max_samples_for(1000, 24) == MAX_BATCH_TOKEN_SLOTS // 1024
    assert max_samples_for(10_000, 30) == 1
    res = sample_continuations(tiny_lm, tiny_lm.encode("Hi"), 500, 1, seed=0)
    assert len(res.token_ids) == 64
    with pytest.raises(ValueError, match="no tokens"):
        sample_continuations(tiny_lm, [], 2, 2)


def test_real_model_seeded_batch_repeats(real_lm):
    ids = real_lm.encode("The capital of France is")
    a = sample_continuations(real_lm, ids, 4, 3, temperature=1.0, seed=3)
    b = sample_continuations(real_lm, ids, 4, 3, temperature=1.0, seed=3)
    assert a.token_ids == b.token_ids
    assert real_lm.token_text(int(torch.argmax(a.first_probs))) == " Paris"


# ------------------------------------------------------------------------------------------------ probes and chain rule
def test_probe_ranks_single_and_multi_token_text(real_lm):
    probs = real_lm.next_token_probs(real_lm.encode("The capital of France is"))
    paris = probe(real_lm, probs, " Paris")
    assert paris.single_token and paris.first_rank == 1 and paris.first_prob > 0.6
    lyon = probe(real_lm, probs, " Lyon")
    assert lyon.first_rank == rank_of(probs, lyon.token_ids[0]) > 1
    assert probe(real_lm, probs, "") is None
    multi = probe(real_lm, probs, " Schwarzenegger")
    assert not multi.single_token and multi.pieces[0] == real_lm.token_text(multi.token_ids[0])


def test_continuation_probs_follow_the_chain_rule(tiny_lm):
    ctx, cont = tiny_lm.encode("the cat"), tiny_lm.encode(" sat on the mat")
    parts = continuation_probs(tiny_lm, ctx, cont)
    manual, seq = [], list(ctx)
    for tok in cont:  # one next-token prediction at a time
        manual.append(float(tiny_lm.next_token_probs(seq)[tok]))
        seq.append(tok)
    assert parts == pytest.approx(manual, rel=1e-4)
    assert continuation_probs(tiny_lm, ctx, []) == []


def test_t_equal_1_is_the_models_own_distribution_not_high():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    assert torch.allclose(sampling.softmax_with_temperature(logits, 1.0), torch.softmax(logits, -1))
    assert [sampling.temperature_regime(t) for t in (0.0, 0.5, 1.0, 1.5)] == ["greedy", "low", "own", "high"]
    assert sampling.temperature_regime(1.0) != "high"
    view = sampling.sampling_view(logits, 1.0, 0, 1.0, 3)
    assert view.effective_before == pytest.approx(2 ** sampling.entropy_bits(torch.softmax(logits, -1)))
    cut = sampling.sampling_view(logits, 1.0, 2, 1.0, 3)
    assert cut.effective_after < cut.effective_before  # top-k = 2 leaves fewer choices
