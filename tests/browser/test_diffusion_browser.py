"""Real browser: the diffusion page opens from a deep link, draws live digits and the 2-D toy, and shows no error."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import SCREENSHOTS, full_screenshot, wait_for_app

pytestmark = pytest.mark.browser


def test_diffusion_deep_link_shows_live_images(page):
    rp = page
    # The link opens the seeds' animation (a folded section, open in the URL); the learner opens the 2-D one.
    rp.page.goto(rp.base + "/diffusion?diff_digit=7&diff_seed=4&diff_seeds_open=true")
    wait_for_app(rp.page, "Diffusion models")
    main = rp.page.locator('[data-testid="stMain"]')
    main.get_by_text("Seed 4, digit 7, w = 2.").wait_for(timeout=120_000)
    main.get_by_text("Press ▶ Play to watch all of them form").wait_for(timeout=120_000)
    assert main.get_by_text("Press ▶ Play: 300 points").count() == 0  # folded: not sent until opened
    main.locator('[data-testid="stExpander"] summary').filter(has_text="300 points flowing onto the shape").click()
    main.get_by_text("Press ▶ Play: 300 points").wait_for(timeout=120_000)
    plots = main.locator(".js-plotly-plot")
    plots.nth(6).wait_for(timeout=60_000)
    assert plots.count() >= 8  # data, forward, loss, reverse, seeds, nearest, field, flow, LLM-vs-diffusion
    # the heatmaps are drawn (plotly renders heatmaps into an image inside the SVG)
    assert main.locator(".js-plotly-plot .hm image").count() >= 5
    rate = main.locator('[data-testid="stMetric"]').filter(has_text="Recognised as the digit asked for")
    value = rate.locator('[data-testid="stMetricValue"]').inner_text()
    assert re.fullmatch(r"\d{1,3}%", value.strip()) and int(value.strip("%")) >= 70
    assert rp.page.get_by_text("Page not found").count() == 0
    assert rp.page.locator('[data-testid="stException"]').count() == 0
    assert main.locator('[data-testid="stAlertContentError"]').count() == 0
    assert not rp.outside_requests, rp.outside_requests
    # play the seeds' animation: plotly redraws frames with no console error
    main.get_by_text("▶ Play").first.click()
    rp.page.wait_for_timeout(1500)
    assert not [e for e in rp.console_errors if "plotly" in e.lower()], rp.console_errors
    full_screenshot(rp.page, SCREENSHOTS / "diffusion_live.png")
