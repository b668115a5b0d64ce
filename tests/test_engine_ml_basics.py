"""Engine tests for the ML-to-LLM toys (regression, softmax classifier, Gaussian mixture) and the LM-side framing."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine import ml_basics as mb
from engine.scoring import score_text

# ------------------------------------------------------------------------------------------------------ toys


def test_polynomial_fit_recovers_an_exact_polynomial_and_overfits_with_degree():
    x = np.linspace(-2, 2, 15)
    fit = mb.fit_polynomial(x, 1.0 - 2.0 * x + 0.5 * x**2, 2)
    assert np.allclose(fit.coefs, [1.0, -2.0, 0.5], atol=1e-8)
    assert fit.mse < 1e-12
    xs, ys = mb.regression_data(30, noise=0.3, seed=1)
    mses = [mb.fit_polynomial(xs, ys, d).mse for d in (1, 3, 9)]
    assert mses[0] > mses[1] > mses[2]  # more capacity always fits the training points better
    assert mb.fit_polynomial(xs[:3], ys[:3], 12).degree == 2  # clipped to n - 1


def test_softmax_classifier_learns_blobs_and_its_loss_falls():
    X, y = mb.blobs(60, spread=0.9, seed=0)
    clf = mb.fit_softmax_classifier(X, y, 3)
    assert clf.losses[0] == pytest.approx(math.log(3))  # zero weights: uniform over 3 classes
    assert clf.losses[-1] < 0.3 and all(a >= b - 1e-12 for a, b in zip(clf.losses, clf.losses[1:]))
    assert clf.accuracy(X, y) > 0.9
    p = clf.predict_proba(mb.BLOB_CENTRES)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert list(p.argmax(axis=1)) == [0, 1, 2]  # each centre is classified as its own class
    # Harder data (more overlap) is classified worse.
    Xh, yh = mb.blobs(60, spread=2.5, seed=0)
    assert mb.fit_softmax_classifier(Xh, yh, 3).accuracy(Xh, yh) < clf.accuracy(X, y)


def test_mixture_finds_the_three_blobs():
    X, _ = mb.blobs(200, spread=0.6, seed=3)
    mix = mb.fit_mixture(X, 3, seed=0)
    assert mix.weights.sum() == pytest.approx(1.0)
    assert np.allclose(np.sort(mix.weights), 1 / 3, atol=0.03)
    for centre in mb.BLOB_CENTRES:  # every true centre has a fitted mean close to it
        assert np.min(np.linalg.norm(mix.means - centre, axis=1)) < 0.15
    # More components never fit the training data worse (EM from a good start); one Gaussian fits clearly worse.
    one = mb.fit_mixture(X, 1)
    assert one.avg_loglik < mix.avg_loglik - 0.3
    assert np.allclose(one.means[0], X.mean(axis=0)) and np.allclose(one.covariances[0], np.cov(X.T, bias=True), atol=2e-4)


def test_mixture_density_integrates_to_one():
    X, _ = mb.blobs(80, seed=0)
    mix = mb.fit_mixture(X, 3)
    xs, ys, pts = mb.grid((-8, 8), (-8, 9), 200)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert np.exp(mix.log_density(pts)).sum() * cell == pytest.approx(1.0, abs=0.01)


def test_sampled_points_follow_the_fitted_distribution():
    X, _ = mb.blobs(100, spread=0.8, seed=0)
    mix = mb.fit_mixture(X, 3, seed=0)
    S, comp = mix.sample(20000, seed=7)
    assert S.shape == (20000, 2)
    # Component frequencies match the mixing weights.
    freq = np.bincount(comp, minlength=3) / len(comp)
    assert np.allclose(freq, mix.weights, atol=0.015)
    # Each component's samples have that component's mean and covariance.
    for k in range(3):
        Sk = S[comp == k]
        assert np.allclose(Sk.mean(axis=0), mix.means[k], atol=0.05)
        assert np.allclose(np.cov(Sk.T), mix.covariances[k], atol=0.06)
    # And the whole cloud has the mixture's mean and covariance.
    assert np.allclose(S.mean(axis=0), mix.mean(), atol=0.05)
    assert np.allclose(np.cov(S.T), mix.covariance(), rtol=0.05, atol=0.05)
    # Samples are as likely under the model as the training data (they come from p(x)), uniform noise is not.
    assert abs(mix.log_density(S).mean() - mix.avg_loglik) < 0.15
    noise = np.random.default_rng(0).uniform(-6, 6, size=(2000, 2))
    assert mix.log_density(noise).mean() < mix.avg_loglik - 1.0
    # Seeded: same seed, same points; another seed, other points.
    assert np.array_equal(mix.sample(50, seed=1)[0], mix.sample(50, seed=1)[0])
    assert not np.array_equal(mix.sample(50, seed=1)[0], mix.sample(50, seed=2)[0])


# ------------------------------------------------------------------------------------------------------ the LM side


def test_head_is_a_linear_classifier_over_the_vocabulary(tiny_lm):
    ids = tiny_lm.encode("Hello world")
    hc = mb.next_token_head(tiny_lm, ids)
    assert hc.weight_shape == (tiny_lm.vocab_size, tiny_lm.info.hidden_size)
    assert hc.max_abs_diff < 1e-4
    assert torch.allclose(hc.logits, tiny_lm.next_token_logits(ids), atol=1e-5)  # last row only: float rounding
    with pytest.raises(ValueError):
        mb.next_token_head(tiny_lm, [])


def test_head_check_on_real_model(real_lm):
    hc = mb.next_token_head(real_lm, real_lm.encode("The capital of France is"))
    assert hc.weight_shape == (49152, 576) and not hc.has_bias
    assert hc.max_abs_diff < 1e-3
    assert real_lm.token_text(int(hc.logits.argmax())) == " Paris"


def test_sentence_scoring_prefers_the_natural_sentence(real_lm):
    cmp = mb.compare_sentences(real_lm, "The cat sat on the mat.", "The mat sat on the cat.")
    assert cmp.winner == "a" and cmp.log_ratio > 5
    assert cmp.score_a.total_logprob == pytest.approx(score_text(real_lm, "The cat sat on the mat.").total_logprob)
    assert len(cmp.score_a.tokens) == len(real_lm.encode("The cat sat on the mat."))  # every token is scored
    assert cmp.times_more_likely == pytest.approx(math.exp(cmp.log_ratio))
    swapped = mb.compare_sentences(real_lm, "I drank a cup of hot shoes.", "I drank a cup of hot coffee.")
    assert swapped.winner == "b"
    same = mb.compare_sentences(real_lm, "Hello there.", "Hello there.")
    assert same.winner == "tie"
    with pytest.raises(ValueError, match="empty"):
        mb.compare_sentences(real_lm, "  ", "Hi")


def test_classification_by_prompting(real_lm):
    neg = mb.classify_by_prompt(real_lm, "The food was cold and the waiter was rude.")
    pos = mb.classify_by_prompt(real_lm, "I loved this film, the acting was wonderful.")
    assert neg.predicted == "negative" and neg.probs[1] > 0.8
    assert pos.predicted == "positive" and pos.probs[0] > 0.8
    assert sum(neg.probs) == pytest.approx(1.0)
    assert 0.5 < neg.label_mass <= 1.0  # few-shot: most of the next-token mass lands on the two labels
    assert neg.prompt.endswith("Review: The food was cold and the waiter was rude.\nSentiment:")
    zero = mb.classify_by_prompt(real_lm, "The food was cold and the waiter was rude.", few_shot=False)
    assert zero.label_mass < neg.label_mass  # without examples the model spreads mass elsewhere
    with pytest.raises(ValueError):
        mb.classify_by_prompt(real_lm, "   ")


def test_usage_code_reproduces_the_page_numbers(real_lm, tmp_path):
    """The transformers snippet the page shows, run as-is (model id → local copy), prints the page's numbers."""
    prompt, a, b = "The capital of France is", 'It\'s "quoted"\n text.', "The mat sat on the cat."
    code = mb.usage_code(real_lm.source.location, prompt, a, b)
    compile(code, "snippet", "exec")
    path = tmp_path / "snippet.py"
    path.write_text(code)
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    first = next(line for line in lines if line.startswith("next "))
    assert first.startswith("next ' Paris'")
    probs = real_lm.next_token_probs(real_lm.encode(prompt))
    assert float(first.split()[-1]) == pytest.approx(float(probs.max()), abs=2e-3)
    logp = {line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("logp_")}
    assert logp["logp_a"] == pytest.approx(score_text(real_lm, a).total_logprob, abs=0.05)
    assert logp["logp_b"] == pytest.approx(score_text(real_lm, b).total_logprob, abs=0.05)


# ------------------------------------------------------------------------------------------------ #16 / #17 helpers
def test_point_prediction_is_the_classifiers_probabilities_sorted():
    X, y = mb.blobs(60, 0.9, 0)
    clf = mb.fit_softmax_classifier(X, y, 3)
    point = mb.point_prediction(clf, 2.0, -1.0)
    direct = clf.predict_proba(np.array([[2.0, -1.0]]))[0]
    assert list(point.probs) == sorted(direct.tolist(), reverse=True)
    assert point.classes[0] == int(np.argmax(direct)) == 1 and point.names[0] == "class B"
    assert sum(point.probs) == pytest.approx(1.0)


def test_mixture_stats_compare_like_with_like():
    X, _ = mb.blobs(60, 0.9, 0)
    mix, samples = mb.mixture_demo(0.9, 0, 3, 400, 0)
    stats = mb.mixture_stats(X, mix, samples)
    assert stats["real points"] == pytest.approx([*X.mean(axis=0), *X.var(axis=0)])
    assert stats["sampled points"] == pytest.approx([*samples.mean(axis=0), *samples.var(axis=0)])  # same ddof
    assert stats["fitted p(x)"] == pytest.approx([*mix.mean(), *np.diag(mix.covariance())])
    # 400 samples of the fitted model land near its own moments
    assert stats["sampled points"][:2] == pytest.approx(stats["fitted p(x)"][:2], abs=0.3)


def test_connections_give_one_live_number_per_mapping(real_lm):
    text = "The capital of France is"
    conn = mb.connections(real_lm, text)
    score = score_text(real_lm, text)
    assert conn.n_tokens == len(real_lm.encode(text)) and conn.n_chars == len(text)
    assert conn.mean_loss == pytest.approx(score.mean_loss) and conn.perplexity == pytest.approx(score.perplexity)
    chat = real_lm.encode(real_lm.chat_prompt([{"role": "user", "content": text}]))
    assert conn.chat_tokens == len(chat) > conn.n_tokens
    with pytest.raises(ValueError):
        mb.connections(real_lm, "  ")


def test_usage_code_uses_the_pages_start_token_and_does_not_promise_the_same_numbers():
    code = mb.usage_code("HuggingFaceTB/SmolLM2-135M-Instruct", "Hi", "a", "b")
    assert "convert_tokens_to_ids('<|endoftext|>')" in code and "bos_token_id" not in code
    assert "4-bit" in code and "same" not in code.lower()
