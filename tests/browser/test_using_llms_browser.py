"""Real browser: the Using an LLM page answers a shared request with the local model, and its "Try it" box turns done."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import SCREENSHOTS, full_screenshot, wait_for_app

pytestmark = pytest.mark.browser


def test_send_a_request_from_a_link_and_finish_a_challenge(page):
    rp = page
    rp.page.goto(rp.base + "/using_llms?api_max=2&api_user=What+is+the+capital+of+France%3F")
    wait_for_app(rp.page, "Using an LLM: APIs & serving")
    main = rp.page.locator('[data-testid="stMain"]')
    main.get_by_text("No network call is made").wait_for(timeout=120_000)
    main.get_by_text("Try it: 0 of 2 done").wait_for(timeout=60_000)
    main.get_by_role("button", name="Send the request").click()
    main.get_by_text("the reply hit", exact=False).first.wait_for(timeout=300_000)
    response = json.loads(main.locator('[data-testid="stCode"] code').nth(1).inner_text())
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["usage"]["completion_tokens"] == 2
    assert response["usage"]["total_tokens"] == response["usage"]["prompt_tokens"] + 2
    # the frame's challenge box re-checks the new response: "length" is one of its two tasks
    main.get_by_text("Try it: 1 of 2 done").wait_for(timeout=60_000)
    rate = main.locator('[data-testid="stMetric"]').filter(has_text="Time to first token")
    assert re.fullmatch(r"[\d,]+ ms", rate.locator('[data-testid="stMetricValue"]').inner_text().strip())
    assert rp.page.get_by_text("Page not found").count() == 0
    assert rp.page.locator('[data-testid="stException"]').count() == 0
    assert not rp.outside_requests, rp.outside_requests  # no network call, as the page says
    full_screenshot(rp.page, SCREENSHOTS / "using_llms.png")
