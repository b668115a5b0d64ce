"""AppTest: the diffusion page shows the real forward process, the shipped model's samples for the chosen seed, a
real-digit classifier's verdict, survives bad links, refuses empty or huge drawings, and trains live on a click."""

from __future__ import annotations

import base64
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine import diffusion as dm
from tests.conftest import app_page, assert_no_exception, metric_value

STEM = "diffusion"


def charts(at) -> dict[str, dict]:
    """Plotly specs by widget key (the key ends the element id)."""
    import json

    return {c.proto.id.split("-", 2)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def array(value) -> np.ndarray:
    """A plotly JSON array: a plain (nested) list or a base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            arr = arr.reshape([int(s) for s in str(shape).split(",")])
        return arr
    return np.array(value, dtype=float)


def tile_image(z: np.ndarray, i: int, cols: int) -> np.ndarray:
    """Image ``i`` (64 values) out of a tiled grid."""
    r, c = divmod(i, cols)
    return z[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8].reshape(64)


@pytest.fixture(scope="module")
def shipped():
    return dm.load_checkpoint(dm.checkpoint_path("digits"))


@pytest.fixture(scope="module")
def page():
    at = app_page(STEM, query=OPEN)
    assert_no_exception(at)
    return at


#: The page's folded sections (the schedule and both animations), opened through the URL as a shared link can.
OPEN = {"diff_schedule_open": "true", "diff_seeds_open": "true", "diff_flow_open": "true"}


def test_the_animations_and_the_schedule_are_sent_only_once_opened():
    at = app_page(STEM)
    assert_no_exception(at)
    shown = charts(at)
    assert set(shown) == {"diff_real", "diff_forward", "diff_loss", "diff_reverse", "diff_nearest", "diff_field",
                          "diff_vs_llm"}
    assert not any(spec.get("frames") for spec in shown.values())  # no animation frames travel while folded
    assert [e.label for e in at.expander][:3] == ["How fast is the image replaced by noise?",
                                                  "Eight seeds forming at once (animation)",
                                                  "300 points flowing onto the shape (animation)"]
    at.session_state["diff_flow_open"] = True  # the learner opens one
    at.run()
    assert_no_exception(at)
    assert len(charts(at)["diff_flow"]["frames"]) == 26 and "diff_seeds" not in charts(at)


def test_forward_process_and_noise_check_are_computed(page):
    at = page
    x, _ = dm.digits_data()
    steps = [0, 10, 25, 30, 50, 75, 100]  # the fixed steps plus the slider's default (30)
    z = array(charts(at)["diff_forward"]["data"][0]["z"])
    expected = dm.forward_frames(dm.linear_schedule(), x[0], steps, 0)
    for i in range(len(steps)):
        assert tile_image(z, i, len(steps)) == pytest.approx(expected[i].tolist(), abs=1e-5)
    assert tile_image(z, 0, len(steps)) == pytest.approx(x[0].tolist())  # t = 0: the real digit
    spread = float(metric_value(at, "Spread of x_100 (all digits)"))
    assert abs(spread - 1.0) < 0.01  # the last step is unit-variance noise
    assert abs(float(metric_value(at, "Mean of x_100 (all digits)"))) < 0.01


def test_reverse_process_shows_the_models_samples_for_the_seed(page, shipped):
    at = page
    run = dm.sample(shipped, list(range(8)), 3, 2.0)  # defaults: digit 3, w = 2, seeds 0…7
    specs = charts(at)
    moments = [0, 25, 50, 75, 90, 100]
    z = array(specs["diff_reverse"]["data"][0]["z"])
    for i, m in enumerate(moments):
        assert tile_image(z, i, len(moments)) == pytest.approx(run.path[m][0].tolist(), abs=1e-4)
    # the animation's last frame holds all eight finished digits
    frames = specs["diff_seeds"]["frames"]
    assert len(frames) == 21
    last = array(frames[-1]["data"][0]["z"])
    for i in range(8):
        assert tile_image(last, i, 8) == pytest.approx(run.final[i].tolist(), abs=1e-4)
    # the loss curve of the shipped model falls
    loss = specs["diff_loss"]["data"][0]["y"]
    assert loss[0] > 3 * loss[-1]


def test_classifier_reads_the_generated_digits(page, shipped):
    at = page
    clf, held_out = dm.digit_classifier()
    wanted = [d for d in range(10) for _ in range(10)]
    images = dm.sample(shipped, list(range(100)), wanted, 2.0).final
    rec = dm.recognise(clf, images, wanted)
    assert metric_value(at, "Recognised as the digit asked for") == f"{rec.rate:.0%}"
    assert rec.rate >= 0.9  # chance is 10 %
    assert metric_value(at, "Classifier on real held-out digits") == f"{held_out:.0%}"
    near = dm.nearest_training(images, dm.digits_data()[0])
    assert metric_value(at, "Closest training image (median)") == f"{float(np.median(near.distance)):.3f}"
    annotations = [a["text"] for a in charts(at)["diff_nearest"]["layout"]["annotations"]]
    assert annotations[0] == f"asked 0, read {rec.predicted[0]}"


def test_link_values_seed_the_widgets():
    at = app_page(STEM, query={"diff_digit": "7", "diff_w": "1.0", "diff_seed": "5", "diff_step": "40"})
    assert_no_exception(at)
    assert any("Seed 5, digit 7, w = 1." in c.value for c in at.caption)
    assert at.slider(key="diff_step").value == 40


@pytest.mark.parametrize(
    "query",
    [
        {"diff_seed": "nan"},
        {"diff_seed": "1e999", "diff_img": "-4", "diff_t": "inf"},
        {"diff_w": "99", "diff_digit": "eleven", "diff_step": "abc"},
        {"diff_shape": "triangle", "diff_model": "bogus", "diff_field_t": "0"},
    ],
)
def test_bad_link_values_do_not_crash(query):
    at = app_page(STEM, query=query)
    assert_no_exception(at)
    assert at.slider(key="diff_w").value == 2.0 and at.selectbox(key="diff_digit").value == 3
    assert at.number_input(key="diff_seed").value == 0


def test_own_points_empty_or_huge_give_a_clear_message():
    at = app_page(STEM, query={"diff_shape": "my own points", "diff_points": "no points here"})
    assert_no_exception(at)
    assert any("0 usable point(s) (1 line(s) could not be read" in w.value for w in at.warning)
    at.text_area(key="diff_points").set_value("").run()
    assert_no_exception(at)
    assert any("0 usable point" in w.value for w in at.warning)
    at.text_area(key="diff_points").set_value("\n".join(f"{i}, {i % 5}" for i in range(10_000))).run()
    assert_no_exception(at)
    assert any("10,000 points is too many" in w.value for w in at.warning)
    assert "diff_field" not in charts(at)


def test_train_it_yourself_runs_once_and_its_loss_falls(monkeypatch):
    from components import caches

    # A short run of the same training code (the full one is measured by `make bench`).
    monkeypatch.setattr(dm, "DIGITS_CONFIG", replace(dm.DIGITS_CONFIG, steps=200, hidden=64, layers=2))
    caches._diffusion_jobs.clear()
    try:
        at = app_page(STEM)
        at.button(key="diff_train").click().run()
        assert_no_exception(at)
        job = caches.diffusion_started("digits")
        assert job.done and job.error is None and job.total == 200
        assert caches.diffusion_training("digits") is job  # one shared run per server
        lines = {d["name"]: d["y"] for d in charts(at)["diff_loss"]["data"]}
        mine = lines["Trained on this server"]
        assert mine == pytest.approx(dm.smooth(job.result.losses)) and mine[0] > mine[-1]
        assert "Trained on this server" in at.segmented_control(key="diff_model").options
        at.segmented_control(key="diff_model").set_value("trained here").run()
        assert_no_exception(at)
        run = dm.sample(job.result, list(range(8)), 3, 2.0)
        z = array(charts(at)["diff_reverse"]["data"][0]["z"])
        assert tile_image(z, 5, 6) == pytest.approx(run.final[0].tolist(), abs=1e-4)
        assert torch.is_tensor(run.final)
    finally:
        for cached in (caches._diffusion_jobs, caches.diffusion_samples, caches.diffusion_quality):
            cached.clear()


def test_twenty_sessions_at_once_share_one_training_run(monkeypatch):
    import threading

    from components import caches

    calls = []
    real = dm.train_digits
    monkeypatch.setattr(dm, "DIGITS_CONFIG", replace(dm.DIGITS_CONFIG, steps=100, hidden=32, layers=1))
    monkeypatch.setattr(dm, "train_digits", lambda report: calls.append(1) or real(report))
    caches._diffusion_jobs.clear()
    try:
        jobs, barrier = [], threading.Barrier(20)

        def session():
            barrier.wait()
            jobs.append(caches.diffusion_training("digits"))

        threads = [threading.Thread(target=session) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(jobs) == 20 and all(j is jobs[0] for j in jobs)
        assert jobs[0].wait(120) and jobs[0].error is None and calls == [1]  # trained once
    finally:
        caches._diffusion_jobs.clear()
