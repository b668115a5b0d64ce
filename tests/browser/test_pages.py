"""Real browser, every page: deep link on the shared server, main control driven, no exception, no error modal,
no request to any other host; screenshots in normal and presentation mode (the README gallery is made from them)."""

from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from components.frame import available_pages
from tests.browser.conftest import SCREENSHOTS, full_screenshot, wait_for_app

pytestmark = pytest.mark.browser

#: The main control of each page: (text box label, text to type, text expected on the page afterwards or None).
#: Text areas are applied with Ctrl+Enter, one-line inputs with Enter.
MAIN_CONTROL: dict[str, tuple[str, str, str | None]] = {
    "home": ("Prompt", "The capital of Italy is", "Most likely next token: ' Rome'"),
    "ml_to_llm": ("Prompt", "The capital of Italy is", None),
    "next_token": ("Prompt", "The capital of Italy is", None),
    "attention": ("Prompt", "The cat sat on the mat", None),
    "pretraining": ("Text to score", "The cat sat on the mat.", None),
    "fine_tuning": ("Request", "Give me two tips for sleeping.", None),
    "tokenization": ("Text (updates as you type)", "Hello world 😀", None),
    "embeddings": ("Word", "queen", None),
    "context_window": ("Text", "My name is Bob. I like tea. What is my name? Your name is", None),
    "temperature": ("Prompt", "Once upon a time", None),
    "prompts": ("User message", "What is the capital of Italy?", None),
    "evaluation": ("Text A", "The sun rises in the east.", None),
}


#: Text of each page's heading where it differs from its navigation label.
HEADING = {"home": "LLM Explainer", "fine_tuning": "Fine-tuning", "rlhf": "RLHF: learning from human preferences"}


#: Every tick label and axis title of every drawn chart whose box leaves its chart's SVG (cut off on screen).
_CUT_LABELS_JS = """() => { const cut = []; let charts = 0;
  for (const gd of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')) {
    const svg = gd.querySelector('.main-svg'); if (!svg) continue; const box = svg.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) continue; charts++;
    for (const t of gd.querySelectorAll('.xtick text, .ytick text, .g-xtitle text, .g-ytitle text')) {
      const r = t.getBoundingClientRect(); if (r.width < 1 || !t.textContent.trim()) continue;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        cut.push(t.textContent.slice(0, 40));
    }
  } return {charts, cut}; }"""


def _assert_no_cut_labels(page) -> int:
    """Wait for the page's charts to be drawn and check that none has a tick label or axis title cut off (the app
    computes most charts' margins itself: components/figures/margins.py). Returns the number of charts checked."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')].every(c => !c.offsetParent || c.querySelector('.main-svg'))",
        timeout=60_000,
    )
    # Where plotly still measures labels itself, it draws the chart once and again with grown margins: a label is
    # cut off in between (for longer on a busy machine). Wait for the final drawing; what stays cut is a defect.
    try:
        page.wait_for_function(f"() => ({_CUT_LABELS_JS})().cut.length === 0", timeout=20_000)
    except PlaywrightTimeoutError:
        pass
    found = page.evaluate(_CUT_LABELS_JS)
    assert not found["cut"], f"chart labels cut off: {found['cut'][:8]}"
    return found["charts"]


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
    wait_for_app(page.page, HEADING.get(stem, target.title))
    page.page.wait_for_timeout(1000)
    _assert_clean(page)
    _assert_no_cut_labels(page.page)
    full_screenshot(page.page, SCREENSHOTS / f"{stem}.png")
    if stem in MAIN_CONTROL:
        label, text, expected = MAIN_CONTROL[stem]
        box = page.page.locator('[data-testid="stMain"]').get_by_role("textbox", name=label).first
        box.fill(text)
        is_area = box.evaluate("el => el.tagName") == "TEXTAREA"
        box.press("Control+Enter" if is_area else "Enter")
        page.page.wait_for_timeout(800)
        wait_for_app(page.page, expected or HEADING.get(stem, target.title))
        _assert_clean(page)
        assert box.input_value() == text


@pytest.mark.parametrize("stem", [p.stem for p in available_pages()])
def test_page_in_presentation_mode(browser, app_server, stem):
    from tests.browser.conftest import new_page

    target = next(p for p in available_pages() if p.stem == stem)
    rp = new_page(browser, app_server, width=1920, height=1080)
    try:
        path = "/" if stem == "home" else f"/{stem}"
        rp.page.goto(f"{app_server}{path}?present=true")
        wait_for_app(rp.page, HEADING.get(stem, target.title))
        rp.page.wait_for_timeout(1000)
        _assert_clean(rp)
        # body text in the main area is large enough for the back of a room (the style arrives with the script run)
        rp.page.wait_for_function(
            "() => { const p = document.querySelector('[data-testid=\"stMain\"] [data-testid=\"stMarkdownContainer\"] p');"
            " return p && parseFloat(getComputedStyle(p).fontSize) >= 20; }",
            timeout=30_000,
        )
        _assert_no_cut_labels(rp.page)
        full_screenshot(rp.page, SCREENSHOTS / f"{stem}-present.png")
    finally:
        rp.page.context.close()
