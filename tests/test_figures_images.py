"""The diffusion page's pure figure builders: tiles land where the page's tests read them, frames and arrows."""

from __future__ import annotations

import numpy as np

from components.figures import images as fig


def test_tile_places_each_image_with_nan_gaps():
    imgs = np.arange(3 * 64, dtype=float).reshape(3, 64)
    grid = fig.tile(imgs, cols=2)
    assert grid.shape == (17, 17)
    assert np.array_equal(grid[0:8, 9:17].reshape(64), imgs[1]) and np.array_equal(grid[9:17, 0:8].reshape(64), imgs[2])
    assert np.isnan(grid[8]).all() and np.isnan(grid[9:17, 9:17]).all()  # the gap row and the empty slot


def test_digit_grid_titles_and_clipped_scale():
    f = fig.digit_grid(np.zeros((4, 64)), ["a", "b", "c", "d"], cols=2)
    assert [a.text for a in f.layout.annotations] == ["a", "b", "c", "d"]
    assert f.data[0].zmin == -1 and f.data[0].zmax == 1
    assert fig.digit_grid(np.zeros((1, 64)), clip=False).data[0].zmin is None


def test_reverse_animation_has_one_frame_and_slider_step_per_moment():
    frames = np.random.default_rng(0).normal(size=(5, 3, 64))
    f = fig.reverse_animation(frames, [f"step {i}" for i in range(5)])
    assert len(f.frames) == 5 and len(f.layout.sliders[0].steps) == 5
    assert np.allclose(np.asarray(f.frames[2].data[0].z)[0:8, 9:17].reshape(64), frames[2, 1])
    assert np.allclose(np.asarray(f.data[0].z), np.asarray(f.frames[-1].data[0].z), equal_nan=True)  # opens finished


def test_toy_field_draws_one_segment_per_arrow():
    pts, arrows = np.zeros((6, 2)), np.ones((6, 2)) * 0.1
    f = fig.toy_field_figure(np.zeros((10, 2)), pts, arrows, np.ones((4, 2)))
    segments = next(t for t in f.data if t.name == "denoising direction")
    assert len(segments.x) == 18 and segments.x[1] == 0.1 and segments.x[2] is None
    assert list(next(t for t in f.data if t.name == "generated points").x) == [1.0] * 4


def test_loss_curve_and_schedule():
    f = fig.loss_curve({"run": [3.0, 2.0, 1.0]}, 50)
    assert list(f.data[0].x) == [50, 100, 150] and list(f.data[0].y) == [3.0, 2.0, 1.0]
    s = fig.schedule_figure([1.0, 0.5], [0.0, 0.8], 1)
    assert [t.name.split(" ")[0] for t in s.data] == ["√ᾱ_t", "√(1"]


def test_the_animations_send_their_frames_as_float32():
    """Frames hold the model's values to float32 precision and the figure's JSON is about half the float64 size."""
    import plotly.graph_objects as go
    import plotly.io as pio

    rng = np.random.default_rng(1)
    frames = rng.normal(size=(21, 8, 64))
    f = fig.reverse_animation(frames, [f"step {i}" for i in range(21)], cols=8)
    shown = np.asarray(f.frames[3].data[0].z)
    assert shown.dtype == np.float32
    assert np.allclose(shown[0:8, 9:17].reshape(64), frames[3, 1], rtol=1e-6, atol=1e-6)
    path = rng.normal(size=(26, 300, 2))
    flow = fig.toy_flow_animation(rng.normal(size=(50, 2)), path, [f"step {i}" for i in range(26)])
    assert np.allclose(np.asarray(flow.frames[5].data[0].x), path[5, :, 0], rtol=1e-6, atol=1e-6)
    as_float64 = go.Figure(flow)
    as_float64.frames = [go.Frame(data=[go.Scatter(x=p[:, 0], y=p[:, 1])], traces=[1], name=str(i))
                         for i, p in enumerate(path)]
    assert len(pio.to_json(flow, validate=False)) < 0.6 * len(pio.to_json(as_float64, validate=False))
