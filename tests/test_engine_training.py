"""Engine: loss and perplexity against a manual computation, the one-step demo, LoRA fine-tuning, the busy lock."""

from __future__ import annotations

import copy
import math
import threading
import time

import pytest
import torch
import torch.nn.functional as F

from engine import training
from engine.scoring import random_token_ids, score_completion, score_ids, score_text, shuffled_words, with_bos
from engine.training import (
    FINE_TUNE_LOCK,
    BusyError,
    _logits_with,
    exclusive_fine_tune,
    gradient_step,
    new_adapter,
    weights_fingerprint,
)


def _manual_losses(lm, ids):
    """−log p(ids[t+1] | ids[:t+1]) from the raw HF model, with no engine code in between."""
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0].double()  # [T, V]
    logp = logits.log_softmax(-1)
    return [-float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)]


# ------------------------------------------------------------------------------------------------ loss & perplexity
def test_loss_and_perplexity_match_manual_computation(tiny_lm):
    text = "The quick brown fox jumps over the lazy dog."
    ids = with_bos(tiny_lm, tiny_lm.encode(text))  # the conditioning token the engine scores after
    manual = _manual_losses(tiny_lm, ids)
    score = score_text(tiny_lm, text)
    assert len(score.tokens) == len(ids) - 1
    for tok, m in zip(score.tokens, manual):
        assert tok.loss == pytest.approx(m, abs=1e-4)
    mean = sum(manual) / len(manual)
    assert score.mean_loss == pytest.approx(mean, abs=1e-4)
    assert score.perplexity == pytest.approx(math.exp(mean), rel=1e-4)
    # The training loss (what the optimiser minimises) is the same number as the page's average loss.
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=torch.tensor([ids])).logits[0]
    assert float(training.next_token_loss(logits, ids)) == pytest.approx(mean, abs=1e-4)


def test_real_model_perplexity_matches_manual_and_prefers_natural_text(real_lm):
    text = "The capital of France is Paris."
    ids = with_bos(real_lm, real_lm.encode(text))
    manual = _manual_losses(real_lm, ids)
    score = score_text(real_lm, text)
    assert score.perplexity == pytest.approx(math.exp(sum(manual) / len(manual)), rel=1e-4)
    shuffled = score_text(real_lm, shuffled_words(text, 0))
    rand = score_ids(real_lm, ids[:1] + random_token_ids(real_lm, len(ids) - 1, 0))
    assert score.perplexity < shuffled.perplexity < rand.perplexity


def test_score_completion_scores_only_the_answer(tiny_lm):
    prompt, answer = tiny_lm.encode("Question: hi"), tiny_lm.encode(" Answer: hello there")
    full = _manual_losses(tiny_lm, prompt + answer)
    sc = score_completion(tiny_lm, prompt, answer)
    assert [t.token_id for t in sc.tokens] == answer
    assert sc.total_logprob == pytest.approx(-sum(full[len(prompt) - 1 :]), abs=1e-4)
    with pytest.raises(ValueError):
        score_completion(tiny_lm, [], answer)


def test_score_completion_equals_the_full_texts_scores_for_the_answer(real_lm):
    """The output layer runs only where an answer token is predicted; positions, ranks and log-probs are those of
    scoring the whole text."""
    prompt = real_lm.encode("Review: the soup was cold and the waiter was rude.\nSentiment:")
    answer = real_lm.encode(" negative, sadly")
    full = score_ids(real_lm, prompt + answer).tokens[len(prompt) - 1 :]
    part = score_completion(real_lm, prompt, answer).tokens
    assert [(t.position, t.token_id, t.rank) for t in part] == [(t.position, t.token_id, t.rank) for t in full]
    assert [t.logprob for t in part] == pytest.approx([t.logprob for t in full], abs=1e-4)


def test_shuffle_keeps_words_and_random_tokens_are_plain(real_lm):
    text = "one two three four five six"
    s = shuffled_words(text, 3)
    assert sorted(s.split()) == sorted(text.split()) and s != text
    assert shuffled_words(text, 3) == s  # deterministic
    assert shuffled_words("same same", 1) == "same same"
    ids = random_token_ids(real_lm, 50, 7)
    assert len(ids) == 50 and ids == random_token_ids(real_lm, 50, 7)
    assert not any(real_lm.is_special(i) for i in ids)


# ------------------------------------------------------------------------------------------------ one gradient step
def test_gradient_step_matches_a_real_sgd_step_on_a_copy(tiny_lm):
    ids = [tiny_lm.info.bos_token_id] + tiny_lm.encode("Hello world, this is a test.")
    before = weights_fingerprint(tiny_lm)
    gs = gradient_step(tiny_lm, ids, learning_rates=(0.5,), layers=1)
    assert weights_fingerprint(tiny_lm) == before
    assert all(p.grad is None for p in tiny_lm.model.parameters())
    # Reference: a deep copy of the model, ordinary backward(), weights stepped in place.
    ref = copy.deepcopy(tiny_lm.model)
    x = torch.tensor([ids])
    loss = F.cross_entropy(ref(input_ids=x).logits[0, :-1], x[0, 1:])
    loss.backward()
    w = dict(ref.named_parameters())[training.target_names(tiny_lm, 1)[0]]
    assert gs.loss_before == pytest.approx(loss.item(), abs=1e-4)
    assert gs.grad_norm == pytest.approx(float(w.grad.norm()), rel=1e-4)
    with torch.no_grad():
        w -= 0.5 * w.grad
        after = F.cross_entropy(ref(input_ids=x).logits[0, :-1], x[0, 1:])
    assert gs.loss_after[0] == pytest.approx(float(after), abs=1e-4)
    assert gs.num_params == w.numel()


def test_gradient_step_small_lr_helps_and_huge_lr_overshoots(real_lm):
    ids = [real_lm.info.bos_token_id] + real_lm.encode("The Eiffel Tower is in Paris, the capital of France.")
    gs = gradient_step(real_lm, ids, learning_rates=(0.03, 30.0))
    assert gs.loss_after[0] < gs.loss_before < gs.loss_after[1]
    assert len(gs.token_loss_after[0]) == len(ids) - 1


def test_gradient_step_rejects_bad_lengths(tiny_lm):
    with pytest.raises(ValueError):
        gradient_step(tiny_lm, [5])
    with pytest.raises(ValueError):
        gradient_step(tiny_lm, [5] * (training.MAX_TRAIN_TOKENS + 1))


# ------------------------------------------------------------------------------------------------ LoRA fine-tuning
def test_fresh_adapter_changes_nothing(tiny_lm):
    ids = tiny_lm.encode("Our class mascot is a")
    ad = new_adapter(tiny_lm, layers=2)
    torch.testing.assert_close(_logits_with(tiny_lm, ad.weights(tiny_lm), ids), tiny_lm.forward(ids).logits,
                               rtol=0, atol=1e-5)


def _train_on(lm, adapter, text: str, steps: int, lr: float) -> list[float]:
    """The app's training loop (:func:`training.train_on_dataset`) on one typed line; returns the losses."""
    from engine import datasets as D

    prep = D.prepare(lm, "typed", text.encode())
    settings = training.FineTuneSettings(steps=steps, lr=lr, rank=adapter.rank, layers=len(adapter.names),
                                         eval_every=steps)
    rec = training.DatasetRun(settings, prep.train, prep.val, adapter, None, None, None)
    list(training.train_on_dataset(lm, adapter, prep.train, prep.val, settings, record=rec))
    return rec.train_losses


def test_fine_tune_learns_the_fact_and_leaves_shared_weights_bit_identical(real_lm):
    fact = "Our class mascot is a purple owl."
    probe = real_lm.encode("Our class mascot is a")
    purple = real_lm.encode(" purple")[0]
    snapshot = {n: p.detach().clone() for n, p in real_lm.model.named_parameters()}
    fingerprint = weights_fingerprint(real_lm)
    p_before = float(real_lm.next_token_probs(probe)[purple])

    adapter = new_adapter(real_lm)
    losses = _train_on(real_lm, adapter, fact, steps=20, lr=3e-3)
    assert len(losses) == 20 and losses[-1] < 0.5 * losses[0]  # the loss on its text falls
    after_ft = torch.softmax(_logits_with(real_lm, adapter.weights(real_lm), probe)[-1].double(), -1)
    assert float(after_ft[purple]) > 100 * p_before and float(after_ft[purple]) > 0.3

    # The shared model is untouched: bit-identical weights, no gradients left on it, same predictions.
    assert weights_fingerprint(real_lm) == fingerprint
    for name, p in real_lm.model.named_parameters():
        assert torch.equal(p, snapshot[name]), name
        assert p.grad is None
    assert float(real_lm.next_token_probs(probe)[purple]) == pytest.approx(p_before, rel=1e-6)
    assert adapter.num_params == 4 * 4 * (576 + 1536)  # 4 layers, rank 4, A [4,1536] + B [576,4]


def test_other_sessions_see_the_original_model_while_training(tiny_lm):
    ids = tiny_lm.encode("Hello there, general")
    reference = tiny_lm.forward(ids).logits.clone()
    adapter = new_adapter(tiny_lm)
    done = threading.Event()

    def train():
        try:
            _train_on(tiny_lm, adapter, "Hello there, general Kenobi", steps=30, lr=0.05)
        finally:
            done.set()

    t = threading.Thread(target=train)
    t.start()
    seen = 0
    while not done.is_set() or seen == 0:
        assert torch.equal(tiny_lm.forward(ids).logits, reference)
        seen += 1
    t.join()
    assert not torch.allclose(_logits_with(tiny_lm, adapter.weights(tiny_lm), ids), reference)  # it did learn


def test_a_fine_tune_never_leaks_into_another_sessions_adapter(tiny_lm):
    """While one session trains, another session building its own adapted weights reads the shared ones, never the
    trainer's (found by the 20-session soak test)."""
    trainer, other = new_adapter(tiny_lm, seed=1), new_adapter(tiny_lm, seed=2)
    names = other.names
    shared = {n: p.detach().clone() for n, p in tiny_lm.model.named_parameters() if n in names}
    done = threading.Event()

    def train():
        try:
            _train_on(tiny_lm, trainer, "Hello there, general Kenobi", steps=40, lr=0.5)
        finally:
            done.set()

    t = threading.Thread(target=train)
    t.start()
    reads = 0
    while not done.is_set() or reads == 0:
        weights = other.weights(tiny_lm)  # B = 0 for a fresh adapter: exactly the shared weights
        assert set(weights) == set(names)
        for n in names:
            assert torch.equal(weights[n], shared[n]), "another session's fine-tuned weights leaked in"
        reads += 1
    t.join()
    assert reads > 1


# ------------------------------------------------------------------------------------------------ the line (queue)
def test_queue_is_first_in_first_out_and_shows_places():
    lock = threading.Lock()
    q = training.TrainingQueue(lock, max_line=3)
    a, b, c = q.join("a"), q.join("b"), q.join("DPO")
    assert [q.ahead(t) for t in (a, b, c)] == [0, 1, 2] and q.waiting() == 3
    with pytest.raises(BusyError, match="already waiting"):
        q.join("d")
    order = []

    def worker(t):
        if q.wait_turn(t):
            order.append(t.label)
            time.sleep(0.05)
            q.leave(t)

    threads = [threading.Thread(target=worker, args=(t,)) for t in (c, b)]  # started out of order on purpose
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert order == [] and q.ahead(c) == 2  # a holds the front: nobody passes it
    assert q.wait_turn(a) and lock.locked()
    q.leave(a)
    for t in threads:
        t.join(5)
    assert order == ["b", "DPO"] and q.waiting() == 0 and not lock.locked()
    assert q.ahead(a) == -1


def test_queue_stop_while_waiting_leaves_the_line_and_lock_api_still_refuses():
    q = training.TrainingQueue()  # the server's lock, shared with exclusive_fine_tune
    with q.turn("first") as t:
        assert t is not None and FINE_TUNE_LOCK.locked()
        with pytest.raises(BusyError):  # the old non-waiting API sees the slot taken
            with exclusive_fine_tune():
                pass
        stop = threading.Event()
        waiter = q.join("second")
        stop.set()
        assert q.wait_turn(waiter, stop) is False and waiter.left and q.ahead(waiter) == -1
    assert not FINE_TUNE_LOCK.locked()
    with exclusive_fine_tune():  # and a queued ticket waits for it
        t2 = q.join("third")
        assert q.wait_turn(t2, timeout=0.3) is False
    assert q.waiting() == 0


# ------------------------------------------------------------------------------------------------ dataset fine-tune
def _prep(lm, key="room12_qa"):
    from engine import datasets as D

    return D.prepare(lm, f"builtin:{key}", b"")


def test_batch_masks_the_prompt_and_the_padding():
    from engine.datasets import TokenizedExample

    a, b = TokenizedExample(1, (10, 11, 12, 13, 14), 3), TokenizedExample(2, (20, 21, 22), 1)
    ids, targets = training.batch_tensors([a, b], pad_id=0)
    assert ids.tolist() == [[10, 11, 12, 13, 14], [20, 21, 22, 0, 0]]
    ig = training.IGNORE
    assert targets.tolist() == [[ig, ig, 13, 14], [21, 22, ig, ig]]  # only response tokens (and no padding) count


def test_masked_loss_ignores_prompt_tokens(tiny_lm):
    prep = _prep(tiny_lm)
    ex = prep.tokens[0]
    ids, targets = training.batch_tensors([ex], 0)
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=ids).logits  # [1, T, V]
    logp = logits[0].double().log_softmax(-1)
    manual = [-float(logp[t, ex.ids[t + 1]]) for t in range(ex.n_masked - 1, len(ex.ids) - 1)]
    assert len(manual) == ex.n_trained
    assert float(training.masked_loss(logits, targets)) == pytest.approx(sum(manual) / len(manual), abs=1e-4)
    assert training.dataset_loss(tiny_lm, None, [ex]) == pytest.approx(sum(manual) / len(manual), abs=1e-4)


def test_dataset_fine_tune_learns_is_seeded_and_leaves_the_shared_model_alone(tiny_lm):
    prep = _prep(tiny_lm)
    fingerprint = weights_fingerprint(tiny_lm)
    settings = training.FineTuneSettings(steps=12, lr=0.05, rank=4, layers=2, eval_every=4)

    def run():
        rec = training.DatasetRun(settings, prep.train, prep.val, new_adapter(tiny_lm, 4, 2, 0), None, None, None)
        list(training.train_on_dataset(tiny_lm, rec.adapter, prep.train, prep.val, settings, record=rec))
        return rec

    first, second = run(), run()
    assert len(first.train_losses) == 12 and first.train_losses == second.train_losses  # seeded
    assert [s for s, _ in first.val_points] == [0, 4, 8, 12]
    assert first.val_points[-1][1] < first.val_points[0][1]  # it learned something that carries to held-out rows
    assert first.val_points[0][1] == pytest.approx(training.dataset_loss(tiny_lm, None, prep.val), abs=1e-4)
    assert first.val_points[-1][1] == pytest.approx(training.dataset_loss(tiny_lm, first.adapter, prep.val),
                                                    abs=1e-4)
    assert weights_fingerprint(tiny_lm) == fingerprint
    assert all(p.grad is None for p in tiny_lm.model.parameters())


def test_stop_ends_a_run_and_the_line_moves_on(tiny_lm):
    prep = _prep(tiny_lm)
    q = training.TrainingQueue(threading.Lock())
    settings = training.FineTuneSettings(steps=150, lr=0.01, rank=2, layers=1)
    first = training.start_dataset_run(tiny_lm, prep.train, prep.val, settings, queue=q)
    second = training.start_dataset_run(tiny_lm, prep.train, prep.val, settings, queue=q)
    deadline = time.time() + 60
    while first.steps_done < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert second.status == "queued" and second.ahead == 1
    first.stop.set()
    assert first.wait(60) and first.status == "stopped" and 0 < first.steps_done < 150
    second.stop.set()
    assert second.wait(60) and second.status in ("stopped",) and q.waiting() == 0


def test_overfitting_reads_the_validation_curve():
    assert training.overfitting([(0, 3.0)]) is None
    fit = training.overfitting([(0, 3.0), (5, 2.5), (10, 2.4), (15, 2.7)])
    assert (fit.best_step, fit.best_loss, fit.last_step, fit.rising) == (10, 2.4, 15, True)
    assert not training.overfitting([(0, 3.0), (5, 2.5), (10, 2.49)]).rising


def test_loss_table_aligns_the_two_curves(tiny_lm):
    rec = training.DatasetRun(training.FineTuneSettings(), [], [], new_adapter(tiny_lm, 2, 1), None, None, None)
    rec.train_losses += [3.0, 2.0]
    rec.val_points += [(0, 3.5), (2, 2.5)]
    assert training.loss_table(rec) == [
        {"step": 0, "training loss": None, "validation loss": 3.5},
        {"step": 1, "training loss": 3.0, "validation loss": None},
        {"step": 2, "training loss": 2.0, "validation loss": 2.5},
    ]


def test_settings_are_clipped():
    s = training.FineTuneSettings(steps=10_000, lr=float("nan"), rank=99, layers=-3).clipped()
    assert (s.steps, s.lr, s.rank, s.layers) == (training.MAX_DATASET_STEPS, training.DEFAULT_DATASET_LR, 16, 1)
