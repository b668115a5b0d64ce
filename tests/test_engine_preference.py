"""engine.preference: the shared vote store, the DPO loss against the paper, the frozen-prefix pass against the full
adapted model, the Bradley–Terry reward model on held-out pairs, and a DPO run that moves only the session's adapter."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from engine import preference as pref
from engine.training import _logits_with, new_adapter, weights_fingerprint


# ------------------------------------------------------------------------------------------------ the DPO loss
def test_dpo_loss_matches_the_papers_formula_with_hand_worked_numbers():
    # Rafailov et al. 2023, eq. 7: L = -log σ(β[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]).
    # Pair 1: policy gained 1 nat on the chosen answer and lost 1 on the rejected one: β·2 = 0.2 with β = 0.1,
    #   L = log(1 + e^-0.2) = log(1.8187307531) = 0.5981388693.
    # Pair 2: policy equals the reference: L = log 2 = 0.6931471806.
    # Pair 3: the policy moved the wrong way by 3 nats in total: β·(-3) = -0.3, L = log(1 + e^0.3) = 0.8543552444.
    pc = torch.tensor([-10.0, -5.0, -7.0], dtype=torch.float64)
    pr = torch.tensor([-12.0, -9.0, -6.0], dtype=torch.float64)
    rc = torch.tensor([-11.0, -5.0, -6.0], dtype=torch.float64)
    rr = torch.tensor([-11.0, -9.0, -8.0], dtype=torch.float64)
    loss = pref.dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert loss.tolist() == pytest.approx([0.5981388693, 0.6931471806, 0.8543552444], abs=1e-9)
    # β scales the log-ratio difference: β = 1 on pair 1 gives log(1 + e^-2) = 0.1269280110
    assert float(pref.dpo_loss(pc[:1], pr[:1], rc[:1], rr[:1], beta=1.0)) == pytest.approx(0.1269280110, abs=1e-9)


def test_reward_head_minimises_the_bradley_terry_loss_like_a_direct_fit():
    # scikit-learn's logistic regression on feature differences (with soft labels for ties) must land on the same
    # weights as minimising the Bradley–Terry cross-entropy + the same L2 penalty directly.
    g = torch.Generator().manual_seed(0)
    fa, fb = torch.randn(30, 12, generator=g) + 0.3, torch.randn(30, 12, generator=g)
    p = torch.ones(30)
    p[:4] = 0.5
    model = pref.train_reward_model(fa, fb, p, c=1.0)
    za, zb = (fa - model.mean) / model.std, (fb - model.mean) / model.std
    w = torch.zeros(12, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = pref.bradley_terry_loss(za @ w, zb @ w, p) * 30 + 0.5 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert model.w.tolist() == pytest.approx(w.detach().tolist(), abs=2e-3)
    assert model.losses[1] == pytest.approx(float(pref.bradley_terry_loss(za @ model.w, zb @ model.w, p)))


def test_bradley_terry_loss_and_probability_by_hand():
    # r(A) - r(B) = 1, A preferred: -log σ(1) = log(1 + e^-1) = 0.3132616875; a tie (label 0.5) at difference 0: log 2
    r_a, r_b = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.5])
    assert float(pref.bradley_terry_loss(r_a[:1], r_b[:1], torch.tensor([1.0]))) == pytest.approx(0.3132616875, 1e-6)
    assert float(pref.bradley_terry_loss(r_a[1:], r_b[1:], torch.tensor([0.5]))) == pytest.approx(math.log(2), 1e-6)
    assert pref.sigmoid(1.0) == pytest.approx(0.7310585786) and pref.sigmoid(-800) == 0.0


# ------------------------------------------------------------------------------------------------ the shared store
def test_store_counts_every_vote_of_20_concurrent_sessions_exactly_once():
    store = pref.PreferenceStore()
    barrier = threading.Barrier(20)

    def session(i: int) -> None:
        nonce = f"session-{i}"
        key = pref.vote_key(nonce, "Why is the sky blue?", f"answer {i}", "other")
        barrier.wait()
        for _ in range(3):  # a double click and a rerun submit the same vote again
            store.add(key, "Why is the sky blue?", f"answer {i}", "other", "A" if i % 2 else "B")

    threads = [threading.Thread(target=session, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.counts() == {"A": 10, "B": 10, "tie": 0, "total": 20}
    assert len(store.pairs()) == 20
    # B preferred → the pair's chosen answer is B
    assert all(p.chosen == "other" for p, v in zip(store.pairs(), store.votes()) if v.choice == "B")


def test_store_is_bounded_rejects_bad_choices_and_resets():
    store = pref.PreferenceStore(max_votes=5)
    for i in range(8):
        assert store.add(f"k{i}", "p", f"a{i}", "b", "tie" if i == 7 else "A")
    assert not store.add("k9", "p", "a", "b", "skip") and not store.add("k9", "p", "a", "b", "<script>")
    assert not store.add("k9", "p", " ", "b", "A")  # an empty answer is no training example
    assert store.counts()["total"] == 5 and store.votes()[0].a == "a3"  # the oldest were dropped
    assert len(store.pairs()) == 4  # the tie has no winner
    v0 = store.version
    store.reset()
    assert store.counts()["total"] == 0 and store.version == v0 + 1
    assert store.add("k0", "p", "a0", "b", "A")  # after a reset the same key counts again


def test_choose_pairs_follows_the_source():
    builtin = pref.builtin_set()
    votes = [pref.Vote("p", "x", "y", "B"), pref.Vote("q", "u", "v", "tie")]
    pairs, ties = pref.choose_pairs(pref.SOURCES[0], builtin.train, votes)
    assert len(pairs) == len(builtin.train) and ties == ()
    pairs, ties = pref.choose_pairs(pref.SOURCES[1], builtin.train, votes)
    assert len(pairs) == len(builtin.train) + 1 and pairs[-1] == pref.PreferencePair("p", "y", "x")
    assert ties == (("q", "u", "v"),)
    pairs, _ = pref.choose_pairs(pref.SOURCES[2], builtin.train, votes)
    assert pairs == (pref.PreferencePair("p", "y", "x"),)


def test_builtin_set_is_disjoint_and_sized():
    b = pref.builtin_set()
    assert len(b.train) >= 16 and len(b.held_out) >= 8 and len(b.held_out_prompts) >= 3
    assert not {p.prompt for p in b.train} & {p.prompt for p in b.held_out}
    assert not set(b.held_out_prompts) & {p.prompt for p in b.train}


# ------------------------------------------------------------------------------------------------ the frozen prefix
def test_tail_pass_equals_the_full_adapted_model(tiny_lm):
    adapter = new_adapter(tiny_lm, rank=2, layers=1, seed=1)
    with torch.no_grad():
        for n in adapter.names:
            adapter.b[n].normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    items = [("What is 2 + 2?", "2 + 2 is 4."), ("Hi", "Hello! How can I help you today, my friend?")]
    batch = pref.make_batch(tiny_lm, items)
    layer = pref.first_adapted_layer(adapter.names)
    entering, _ = pref.frozen_hidden(tiny_lm, batch, layer)
    with torch.no_grad():
        logp, _ = pref._answer_logps(tiny_lm, pref.tail_hidden(tiny_lm, entering, layer, adapter.weights(tiny_lm)),
                                     batch)
        for row in range(2):
            end = batch.starts[row] + batch.lengths[row]
            ids = batch.ids[row, :end].tolist()  # unpadded
            full = torch.log_softmax(_logits_with(tiny_lm, adapter.weights(tiny_lm), ids).double(), -1)
            expected = sum(float(full[t - 1, ids[t]]) for t in range(batch.starts[row], end))
            assert float(logp[row]) == pytest.approx(expected, abs=1e-3)


def test_bad_answers_raise_input_errors(tiny_lm):
    with pytest.raises(pref.InputError, match="empty"):
        pref.make_batch(tiny_lm, [("Hi", "  ")])
    with pytest.raises(pref.InputError, match="answer"):
        pref.make_batch(tiny_lm, [("Hi", "word " * 200)])


# ------------------------------------------------------------------------------------------------ the real model
@pytest.fixture(scope="module")
def encoder():
    from engine.encoder import load_encoder

    return load_encoder()


def test_reward_model_beats_chance_on_held_out_pairs(encoder, real_lm):
    b = pref.builtin_set()
    report = pref.fit_reward_model(encoder, b.train, b.held_out)
    assert report.train_pairs == len(b.train) and report.test_pairs == len(b.held_out)
    assert report.model.train_accuracy >= 0.9
    assert report.test_accuracy >= 0.75  # chance is 0.5; a clear preference is learnable from 28 pairs
    assert report.model.losses[-1] < report.model.losses[0] == pytest.approx(math.log(2))
    # the rows agree with the accuracy
    assert sum(r[3] > r[4] for r in report.test_rows) / report.test_pairs == pytest.approx(report.test_accuracy)
    gaming = pref.gaming_probes(encoder, report.model, b.held_out)
    assert len(gaming) == 9 and {g.trick for g in gaming} == {"flattery", "length"}
    assert all(g.variant.startswith(pref.FLATTERY) for g in gaming if g.trick == "flattery")
    assert [g.reward for g in gaming[:3]] == pytest.approx(
        pref.reward_of(encoder, report.model, [(g.prompt, g.answer) for g in gaming[:3]]), abs=1e-5)
    # the LM's own likelihoods of a pair equal the scoring module's answer scores
    from engine.scoring import answer_score

    (lc, lr), = pref.pair_likelihoods(real_lm, b.held_out[:1])
    assert lc == pytest.approx(answer_score(real_lm, b.held_out[0].prompt, b.held_out[0].chosen).total_logprob, abs=1e-3)
    assert lr == pytest.approx(answer_score(real_lm, b.held_out[0].prompt, b.held_out[0].rejected).total_logprob,
                               abs=1e-3)


def test_best_of_n_is_sorted_by_reward_and_seeded(encoder, real_lm):
    b = pref.builtin_set()
    report = pref.fit_reward_model(encoder, b.train[:8], ())
    one = pref.best_of_n(real_lm, encoder, report.model, b.held_out_prompts[0], n=3, seed=5, max_new_tokens=12)
    assert len(one.answers) == 3 and one.rewards == sorted(one.rewards, reverse=True)
    assert one.rewards == pytest.approx(pref.reward_of(encoder, report.model,
                                                       [(b.held_out_prompts[0], a) for a in one.answers]), abs=1e-5)
    again = pref.best_of_n(real_lm, encoder, report.model, b.held_out_prompts[0], n=3, seed=5, max_new_tokens=12)
    assert again.answers == one.answers


def test_dpo_raises_the_margin_moves_only_the_adapter_and_kl_starts_at_zero(real_lm):
    b = pref.builtin_set()
    fingerprint = weights_fingerprint(real_lm)
    adapter = new_adapter(real_lm, layers=pref.DPO_LAYERS)
    prep = pref.prepare_pairs(real_lm, b.train[:6], adapter)
    history = list(pref.dpo_steps(real_lm, adapter, prep, steps=8, beta=0.1, lr=5e-3))
    assert [h.step for h in history] == list(range(9))
    first, last = history[0], history[-1]
    assert first.kl == 0.0 and first.loss == pytest.approx(math.log(2), abs=1e-6)
    assert first.reward_chosen == 0.0 and first.reward_rejected == 0.0
    assert last.kl > 0
    assert last.margin > first.margin + 1.0
    assert last.loss < first.loss
    assert weights_fingerprint(real_lm) == fingerprint  # the shared model never changed


# ------------------------------------------------------------------------------------------------ figures (pure)
def test_figures_carry_the_computed_values():
    from components.figures import preference as figs

    history = [pref.DpoStep(k, 0.69 - 0.1 * k, 0.5 * k, 0.01 * k, -0.01 * k, min(1.0, 0.5 + 0.2 * k), 0.002 * k, k)
               for k in range(4)]
    fig = figs.dpo_curves_figure(history, total_steps=10)
    by_name = {t.name: list(t.y) for t in fig.data}
    assert by_name["KL"] == [0.0, 0.002, 0.004, 0.006] and by_name["margin"] == [0.0, 0.5, 1.0, 1.5]
    assert by_name["rejected"] == pytest.approx([0.0, -0.01, -0.02, -0.03])
    assert tuple(fig.layout.xaxis.range) == (-0.5, 10.5)
    model = pref.RewardModel(torch.zeros(2), torch.ones(2), torch.tensor([1.0, 0.0]))
    report = pref.RewardReport(model, 4, 2, 0.5, [("p1", "good", "bad", 1.0, -1.0), ("p2", "ok", "meh", -0.5, 0.5)],
                               0.1)
    table = figs.reward_table(report, [(-3.0, -5.0), (-2.0, -1.0)])
    assert table["log p(rejected) by the LM"].tolist() == [-5.0, -1.0]
    assert list(table["right?"]) == ["✓", "✗"]
    assert table["p(chosen preferred)"].tolist() == pytest.approx([0.881, 0.269])
    rewards_only = figs.reward_table(report)  # the page before the learner asks for the LM's likelihoods
    assert "log p(chosen) by the LM" not in rewards_only and rewards_only["right?"].tolist() == ["✓", "✗"]
    bars = figs.reward_pairs_figure(report)
    assert list(bars.data[0].x) == [1.0, -0.5] and list(bars.data[1].x) == [-1.0, 0.5]
    bon = pref.BestOfN(["a", "b"], [2.0, 1.0], [-4.0, -9.0], [2, 3])
    fig = figs.best_of_n_figure(bon)
    assert list(fig.data[0].x) == [2.0, 1.0] and list(fig.data[1].x) == pytest.approx([-2.0, -3.0])
    rows = [pref.GamingRow("flattery", "p", "no", pref.FLATTERY + "no", -1.0, 0.5)]
    assert figs.gaming_table(rows)["change"].tolist() == [1.5]


def test_rating_pair_is_seeded_and_never_waits_for_the_model_lock(real_lm):
    """The class soak's voters waited 142 s to open the page: the pair's float32 batch queued for the model lock at
    every step behind 60 sessions. The pair now comes from the lock-free 4-bit decoder."""
    if real_lm.fast_decoder() is None:
        pytest.skip("no 4-bit decoder on this PyTorch build: the pair takes the float32 path")
    prompt = pref.builtin_set().rating_prompts[0]
    first = pref.rating_pair(real_lm, prompt, 3)
    assert first == pref.rating_pair(real_lm, prompt, 3) and first != pref.rating_pair(real_lm, prompt, 4)
    assert first[0] != first[1]
    held, release, got = threading.Event(), threading.Event(), []

    def hold():
        with real_lm.exclusive():
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    worker = threading.Thread(target=lambda: got.append(pref.rating_pair(real_lm, prompt, 5)))
    worker.start()
    worker.join(30)
    finished = not worker.is_alive()
    release.set()
    holder.join(5)
    worker.join(60)
    assert finished, "rating_pair waited for the model lock"
    assert got == [pref.rating_pair(real_lm, prompt, 5)]
