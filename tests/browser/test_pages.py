"""Real browser, every page: deep link on the shared server, main control driven, no exception, no error modal,
no request to any other host; screenshots in normal and presentation mode (the README gallery is made from them)."""

from __future__ import annotations

import pytest

from components.nav import available_pages
from tests.browser.conftest import SCREENSHOTS, full_screenshot, wait_for_app

pytestmark = pytest.mark.browser

#: The main control of each page: (widget label to find, text to type). Text areas get Ctrl+Enter to apply.
MAIN_CONTROL: dict[str, tuple[str, str]] = {}


def _assert_clean(rp) -> None:
    page = rp.page
    assert page.get_by_text("Page not found").count() == 0, "Streamlit showed the 'Page not found' modal"
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback is on screen"
    assert not rp.outside_requests, f"requests left the machine: {rp.outside_requests}"


@pytest.mark.parametrize("stem", [p.stem for p in available_pages()])
def test_page_renders_and_main_control_works(page, stem):
    target = next(p for p in available_pages() if p.stem == stem)
    path = "/" if stem == "home" else f"/{stem}"
    page.page.goto(page.base + path)
    wait_for_app(page.page, target.title)
    page.page.wait_for_timeout(1000)
    _assert_clean(page)
    full_screenshot(page.page, SCREENSHOTS / f"{stem}.png")
    if stem in MAIN_CONTROL:
        label, text = MAIN_CONTROL[stem]
        box = page.page.get_by_label(label).first
        box.fill(text)
        box.press("Control+Enter")
        page.page.wait_for_timeout(500)
        wait_for_app(page.page, target.title)
        _assert_clean(page)


@pytest.mark.parametrize("stem", [p.stem for p in available_pages()])
def test_page_in_presentation_mode(browser, app_server, stem):
    from tests.browser.conftest import new_page

    target = next(p for p in available_pages() if p.stem == stem)
    rp = new_page(browser, app_server, width=1920, height=1080)
    try:
        path = "/" if stem == "home" else f"/{stem}"
        rp.page.goto(f"{app_server}{path}?present=true")
        wait_for_app(rp.page, target.title)
        rp.page.wait_for_timeout(1000)
        _assert_clean(rp)
        size = rp.page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector('[data-testid=\"stMarkdownContainer\"] p')"
            " || document.body).fontSize)"
        )
        assert size >= 20, f"presentation mode text is only {size}px"
        full_screenshot(rp.page, SCREENSHOTS / f"{stem}-present.png")
    finally:
        rp.page.context.close()
