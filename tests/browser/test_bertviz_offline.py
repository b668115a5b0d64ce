"""Real browser, no internet: the attention page's bertviz views draw their SVG from the app's own scripts."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import SCREENSHOTS, wait_for_app

pytestmark = pytest.mark.browser

PROMPT = "The+capital+of+France+is"


def _bertviz_frame(page, timeout_s: float = 90.0):
    """The iframe whose document holds bertviz's SVG, once it has drawn attention lines."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for frame in page.frames:
            if frame is page.main_frame:
                continue
            try:
                if frame.locator("svg line").count() > 0 or frame.locator("svg rect").count() > 20:
                    return frame
            except Exception:  # noqa: BLE001 - a frame can detach while Streamlit re-renders
                continue
        page.wait_for_timeout(500)
    raise AssertionError("no bertviz SVG was drawn")


def _open_bertviz(page) -> None:
    """The views are folded away in an expander under section 3: open it like a learner would."""
    wait_for_app(page, "bertviz: the classic attention views")
    page.locator('[data-testid="stExpander"] summary').filter(has_text="bertviz: the classic attention views").click()


def _assert_clean(rp) -> None:
    assert rp.page.locator('[data-testid="stException"]').count() == 0, "a traceback is on screen"
    assert not rp.outside_requests, f"requests left the machine: {rp.outside_requests}"


def test_head_view_draws_offline(page):
    page.page.goto(f"{page.base}/attention?prompt={PROMPT}")
    _open_bertviz(page.page)
    frame = _bertviz_frame(page.page)
    texts = frame.locator("svg text").all_text_contents()
    assert "capital" in " ".join(texts) and "France" in " ".join(texts)  # readable tokens, no Ġ markers
    assert not any("Ġ" in t for t in texts)
    assert frame.locator("svg line").count() >= 9 * 15  # 9 heads × the 15 query/key pairs a causal 5-token text has
    assert frame.locator("#layer option").count() == 6  # the default layer selection
    # The page's own scripts did the drawing: d3 and jQuery exist inside the frame.
    assert frame.evaluate("() => typeof window.d3.select === 'function' && typeof window.jQuery === 'function'")
    _assert_clean(page)
    page.page.screenshot(path=str(SCREENSHOTS / "attention-head-view.png"), full_page=True)


def test_model_view_draws_offline(page):
    page.page.goto(f"{page.base}/attention?prompt={PROMPT}&at_bv=Model+view&at_bvl=layer+3&at_bvl=layer+29")
    _open_bertviz(page.page)
    frame = _bertviz_frame(page.page)
    labels = frame.locator("svg text").all_text_contents()
    assert "Layers" in labels and "Heads" in labels and "3" in labels and "29" in labels
    assert frame.locator("svg line").count() > 0
    _assert_clean(page)
