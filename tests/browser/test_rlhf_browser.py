"""Real browser: the RLHF page shows two sampled answers, a vote raises the server's count once, the reward model's
held-out accuracy beats chance, and a short DPO run draws its live curves with KL > 0 at the end."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import SCREENSHOTS, full_screenshot, wait_for_app

pytestmark = pytest.mark.browser


def _metric(main, label: str) -> str:
    box = main.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_vote_then_train_reward_model_and_dpo(page):
    rp = page
    rp.page.goto(rp.base + "/rlhf?rl_pairs=4&rl_steps=5&rl_n=2")
    wait_for_app(rp.page, "RLHF: learning from human preferences", timeout_ms=300_000)
    main = rp.page.locator('[data-testid="stMain"]')
    main.get_by_text("Answer A", exact=True).wait_for(timeout=300_000)
    votes = int(_metric(main, "Votes on this server").replace(",", ""))
    main.get_by_role("button", name="A is better").click()
    main.locator('[data-testid="stMetric"]').filter(has_text="Your votes").get_by_text("1", exact=True).wait_for(
        timeout=120_000)
    assert int(_metric(main, "Votes on this server").replace(",", "")) == votes + 1

    main.locator('[data-testid="stMetric"]').filter(has_text="Accuracy on held-out pairs").wait_for(timeout=300_000)
    accuracy = _metric(main, "Accuracy on held-out pairs")
    assert re.fullmatch(r"\d{1,3}%", accuracy) and int(accuracy.rstrip("%")) > 50

    main.get_by_role("button", name=re.compile(r"Run DPO")).click()
    main.get_by_text("Before and after, on prompts that were not in the training pairs").wait_for(timeout=600_000)
    kl = float(_metric(main, "KL from the reference"))
    assert kl > 0
    assert main.locator(".js-plotly-plot").count() >= 2  # reward pairs, DPO curves
    assert rp.page.get_by_text("Page not found").count() == 0
    assert rp.page.locator('[data-testid="stException"]').count() == 0
    assert main.locator('[data-testid="stAlertContentError"]').count() == 0
    assert not rp.outside_requests, rp.outside_requests
    full_screenshot(rp.page, SCREENSHOTS / "rlhf_live.png")
