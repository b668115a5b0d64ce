"""The diffusion engine: the DDPM formulas by hand, the forward process, training, seeded sampling, and what the
shipped digits model draws (a real-digit classifier recognises it; it does not copy training images)."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import pytest
import torch

from engine import diffusion as dm
from engine.jobs import BackgroundJob

#: Share of generated digits (10 per class, guidance 2) a classifier trained on real digits must read as the digit
#: asked for. Chance is 10 %.
MIN_RECOGNITION = 0.9


@pytest.fixture(scope="module")
def digits():
    return dm.digits_data()


@pytest.fixture(scope="module")
def shipped():
    path = dm.checkpoint_path("digits")
    assert path.is_file(), "run scripts/train_diffusion.py to make the shipped checkpoint"
    return dm.load_checkpoint(path)


def test_schedule_matches_the_paper_by_hand():
    s = dm.Schedule(torch.tensor([0.1, 0.2, 0.3]))
    assert s.alphas.tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert s.alpha_bars.tolist() == pytest.approx([0.9, 0.72, 0.504])
    # β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t): 0 at the first step, 0.2·0.1/0.28 at the second
    assert s.posterior_variance.tolist() == pytest.approx([0.0, 0.0714286, 0.3 * 0.28 / 0.496], abs=1e-6)
    # q(x_t | x_0) at t = 1 (0-based) with x_0 = 1, ε = 1: √0.72 + √0.28
    one = torch.ones(1, 1)
    assert float(s.q_sample(one, torch.tensor([1]), one)) == pytest.approx(0.848528 + 0.529150, abs=1e-5)
    assert float(s.q_sample(one, 1, one)) == pytest.approx(1.377678, abs=1e-5)
    # posterior mean at t = 2 with x_0 = 1, x_t = 2: √0.72·0.3/0.496 · 1 + √0.7·0.28/0.496 · 2
    mean, var = s.posterior(one, 2 * one, 2)
    assert float(mean) == pytest.approx(0.513223 + 2 * 0.472308, abs=1e-5)
    assert var == pytest.approx(0.169355, abs=1e-5)
    # x̂_0 inverts the forward jump exactly when the noise is known
    x0, eps = torch.tensor([[0.3, -0.7]]), torch.tensor([[1.5, 0.2]])
    xt = s.q_sample(x0, torch.tensor([2]), eps)
    assert s.predict_x0(xt, 2, eps)[0].tolist() == pytest.approx(x0[0].tolist(), abs=1e-6)


def test_linear_schedule_ends_in_noise():
    s = dm.linear_schedule()
    assert s.steps == dm.STEPS == 100
    assert float(s.betas[0]) == pytest.approx(1e-3) and float(s.betas[-1]) == pytest.approx(0.2)
    assert math.sqrt(float(s.alpha_bars[-1])) < 0.01  # almost nothing of x_0 is left
    signal, noise = dm.mixing_weights(s)
    assert signal[0] == 1.0 and noise[0] == 0.0 and len(signal) == 101
    assert all(a >= b for a, b in zip(signal, signal[1:]))


def test_forward_process_at_the_last_step_is_unit_variance_noise(digits):
    x, _ = digits
    assert x.shape == (1797, 64) and float(x.min()) == -1.0 and float(x.max()) == 1.0
    s = dm.linear_schedule()
    end = dm.noise_check(s, x, s.steps - 1)
    assert abs(end.mean) < 0.01 and abs(end.std - 1) < 0.01 and abs(end.corr_with_x0) < 0.02
    start = dm.noise_check(s, x, 0)
    assert start.corr_with_x0 > 0.95  # one step in, the digit is still there
    frames = dm.forward_frames(s, x[0], [0, 1, 50, 100])
    assert torch.equal(frames[0], x[0])  # step 0 is the clean image
    assert float(torch.corrcoef(torch.stack([frames[3], x[0]]))[0, 1]) < 0.3


def test_training_lowers_the_loss_and_is_seeded(digits):
    x, y = digits
    cfg = replace(dm.DIGITS_CONFIG, steps=300, hidden=64, layers=2, batch=128)
    reports = []
    a = dm.train(cfg, x, y, progress=lambda step, total, loss: reports.append((step, total)))
    first, last = sum(a.losses[:30]) / 30, sum(a.losses[-30:]) / 30
    assert first > 1.5 * last, (first, last)
    assert reports[-1] == (300, 300) and len(reports) == 6
    b = dm.train(cfg, x, y)
    assert a.losses == pytest.approx(b.losses, rel=1e-4)  # same seed, same run


def test_toy_model_trained_from_scratch_samples_onto_the_data():
    data = dm.toy_data("two moons")
    model = dm.train_toy("two moons")  # the page's own 2-D training run, from scratch
    out = dm.sample(model, list(range(200)), clip=None)
    gap = torch.cdist(out.final, data).min(1).values.median()  # distance from a generated point to the data
    noise_gap = torch.cdist(out.path[0], data).min(1).values.median()
    assert float(gap) < 0.1 < float(noise_gap), (float(gap), float(noise_gap))
    pts, arrows = dm.denoise_field(model, 5)
    assert pts.shape == arrows.shape == (225, 2)
    # near the data at low noise, arrows point towards the data (the point moves closer)
    near = torch.tensor(pts)
    before = torch.cdist(near, data).min(1).values
    after = torch.cdist(near + torch.tensor(arrows) * 0.2, data).min(1).values
    assert float((after < before).float().mean()) > 0.8


def test_sampling_is_deterministic_per_seed(shipped):
    a = dm.sample(shipped, [5, 6], digit=3, guidance=2.0)
    b = dm.sample(shipped, [5, 6], digit=3, guidance=2.0)
    assert torch.equal(a.path, b.path)
    assert a.path.shape == (101, 2, 64) and a.x0_pred.shape == (100, 2, 64)
    alone = dm.sample(shipped, [6], digit=3, guidance=2.0)  # a sample depends only on its own seed
    assert torch.allclose(alone.final[0], a.final[1], atol=1e-4)
    assert not torch.allclose(a.final[0], a.final[1], atol=0.05)  # different seeds, different digits


def test_generated_digits_are_recognised_and_not_copied(shipped, digits):
    x, _ = digits
    clf, held_out = dm.digit_classifier()
    assert held_out > 0.97  # the judge itself is good on real digits
    wanted = [d for d in range(10) for _ in range(10)]
    images = dm.sample(shipped, list(range(100)), wanted, 2.0).final  # [100, 64] one class per seed
    rec = dm.recognise(clf, images, wanted)
    assert rec.rate >= MIN_RECOGNITION, rec.per_class()
    assert sum(n for _, n in rec.per_class().values()) == 100
    near = dm.nearest_training(images, x)
    assert min(near.distance) > 0.05  # no generated digit is a training image
    assert 0.05 < near.real_to_real < 1.0
    # unguided digits are still digit-like, but the label is ignored: recognition falls towards chance
    free = dm.recognise(clf, dm.sample(shipped, list(range(100)), wanted, 0.0).final, wanted)
    assert free.rate < rec.rate


def test_checkpoint_round_trip(tmp_path, digits):
    x, y = digits
    model = dm.train(replace(dm.DIGITS_CONFIG, steps=60, hidden=32, layers=1), x, y)
    path = tmp_path / "m.safetensors"
    dm.save_checkpoint(model, path)
    back = dm.load_checkpoint(path)
    assert back.config == model.config and back.parameter_count == model.parameter_count
    assert torch.equal(dm.sample(back, [1], 4).final, dm.sample(model, [1], 4).final)
    assert back.losses == pytest.approx(dm.smooth(model.losses))


def test_shipped_models_are_small(shipped):
    total = shipped.parameter_bytes
    for shape in dm.TOY_SHAPES:
        path = dm.checkpoint_path(shape)
        assert path.is_file()
        total += dm.load_checkpoint(path).parameter_bytes
    assert total < 50e6


def test_parse_points_refuses_empty_and_huge_drawings():
    pts, msg = dm.parse_points("")
    assert pts is None and "0 usable point" in msg
    pts, msg = dm.parse_points("\n".join(f"{i}, {i % 7}" for i in range(10_000)))
    assert pts is None and "10,000 points is too many" in msg
    pts, msg = dm.parse_points("a, b\nnan, 1\n" + "\n".join(f"{i} {2 * i}" for i in range(30)))
    assert pts.shape == (30, 2) and "2 line(s)" in msg
    assert pts.mean(0).abs().max() < 1e-5 and float(pts.std(0).max()) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        dm.toy_data("triangle")


def test_background_job_runs_once_and_reports():
    gate = threading.Event()

    def work(report):
        gate.wait(5)
        for i in range(1, 4):
            report(i, 3, float(i))
        return "ok"

    job = BackgroundJob(work)
    assert not job.running and job.fraction == 0.0
    job.start().start()
    assert job.running and not job.done
    gate.set()
    assert job.wait(5) and job.result == "ok" and job.values == [1.0, 2.0, 3.0] and job.fraction == 1.0
    bad = BackgroundJob(lambda report: 1 / 0).start()
    assert bad.wait(5) and bad.error.startswith("ZeroDivisionError") and bad.result is None
