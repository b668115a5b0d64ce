"""Real browser: the app starts, the home page shows live model output, deep links open with no "Page not found"."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from components.frame import available_pages
from tests.browser.conftest import SCREENSHOTS, full_screenshot, new_page, start_server, stop_server, wait_for_app

pytestmark = pytest.mark.browser


def _assert_clean(rp) -> None:
    page = rp.page
    assert page.get_by_text("Page not found").count() == 0, "Streamlit showed the 'Page not found' modal"
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback is on screen"
    assert not rp.outside_requests, f"requests left the machine: {rp.outside_requests}"


def test_home_renders_live_prediction(page):
    page.page.goto(page.base + "/")
    wait_for_app(page.page, "Try it: what comes next?")
    page.page.get_by_text("Most likely next token: ' Paris'").wait_for(timeout=60_000)
    page.page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    _assert_clean(page)
    full_screenshot(page.page, SCREENSHOTS / "home.png")


def test_deep_link_on_fresh_server_has_no_page_not_found_modal(browser):
    """The first session after a server start opens a deep link: the known Streamlit 1.67 pitfall."""
    target = next((p for p in available_pages() if p.stem != "home"), available_pages()[0])
    proc, base = start_server()
    try:
        rp = new_page(browser, base)
        rp.page.goto(f"{base}/{target.stem}")
        wait_for_app(rp.page, target.title)
        rp.page.wait_for_timeout(1500)  # the modal, when it happens, appears right after the first render
        _assert_clean(rp)
        # the page runs inside the app's frame: sidebar navigation with human labels, and the guided-path footer
        rp.page.get_by_text("Presentation mode").first.wait_for(timeout=30_000)
        assert rp.page.get_by_text("Step ").count() >= 1, "the guided-path footer is missing"
        nav = rp.page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Home" in nav and "streamlit app" not in nav.lower()
        assert rp.page.url.rstrip("/").endswith(target.stem if target.stem != "home" else "")
        full_screenshot(rp.page, SCREENSHOTS / f"deeplink-{target.stem}.png")
        rp.page.context.close()
    finally:
        stop_server(proc)


#: Records every text the sidebar navigation shows, from the first paint (a MutationObserver: no flash is missed).
_NAV_RECORDER = """
window.__navTexts = [];
new MutationObserver(() => {
  const nav = document.querySelector('[data-testid="stSidebarNav"]');
  const text = nav ? nav.innerText : null;
  if (text && window.__navTexts[window.__navTexts.length - 1] !== text) window.__navTexts.push(text);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_make_run_never_shows_streamlits_list_of_the_pages_folder(browser):
    """A fresh ``make run`` server's first visitor sees the app's own navigation from the first paint. Before, the
    sidebar listed the ``pages/`` files ("streamlit app", "attention", … in lower case) for 0.6–5 s, until the
    process's first script run reached ``st.navigation``."""
    proc, base = start_server(preload=True, extra_env={"LLMX_WARM_PAGES": "0"})
    try:
        rp = new_page(browser, base)
        rp.page.add_init_script(_NAV_RECORDER)
        rp.page.goto(base + "/")
        rp.page.get_by_text("Most likely next token: ' Paris'").wait_for(timeout=120_000)
        seen = rp.page.evaluate("window.__navTexts")
        assert seen, "the sidebar navigation never appeared"
        assert all("streamlit app" not in t.lower() and "Home" in t for t in seen), seen
        _assert_clean(rp)
        rp.page.context.close()
    finally:
        stop_server(proc)


def _open(pg, title: str) -> None:
    nav = pg.locator('[data-testid="stSidebarNav"]')
    link = nav.get_by_role("link", name=title)
    more = nav.get_by_test_id("stSidebarNavViewButton")
    # Streamlit folds a long navigation after its first pages ("View N more"): unfold it when the link is hidden.
    if not link.count() and more.count() and "more" in more.inner_text():
        more.click()
    link.click()
    wait_for_app(pg, title)


def _prompt_heatmap_labels(pg) -> list[str] | None:
    """The token labels of the Embeddings page's heatmap of the shared prompt (read from the plotly element; Streamlit wraps titles in <b>)."""
    return pg.evaluate(
        """() => { for (const el of document.querySelectorAll('.js-plotly-plot')) {
            const title = el.layout && el.layout.title && el.layout.title.text;
            if (title && title.includes('Cosine between your tokens')) return el.data[0].x; }
          return null; }"""
    )


def test_prompt_travels_from_page_to_page(page):
    """Type the prompt once on Home and follow it through the sidebar to Next-token, Attention, Tokenization and
    Embeddings; edit it on Tokenization and Next-token predicts from the edit."""
    pg = page.page
    main = pg.locator('[data-testid="stMain"]')
    pg.goto(page.base + "/")
    wait_for_app(pg, "Try it: what comes next?")
    box = main.locator("textarea").first
    box.fill("The capital of Italy is")
    box.press("Control+Enter")
    wait_for_app(pg, "Most likely next token: ' Rome'")
    for title in ("Next-token prediction", "Attention & Transformers"):
        _open(pg, title)
        assert main.locator("textarea").first.input_value() == "The capital of Italy is"
        assert "prompt=The+capital+of+Italy+is" in pg.url  # and the link to this view carries it
    # Tokenization tokenizes the same prompt in its one-line box…
    _open(pg, "Tokenization")
    line = main.get_by_role("textbox", name="Text (updates as you type)")
    expect(line).to_have_value("The capital of Italy is", timeout=30_000)
    expect(main.locator(".llmx-chips").first).to_contain_text(" Italy", timeout=30_000)
    assert "prompt=The+capital+of+Italy+is" in pg.url
    # …Embeddings compares its tokens' vectors…
    _open(pg, "Embeddings")
    # The box sits below sections that run the model first: give the page the time it takes on a busy machine.
    expect(main.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("The capital of Italy is",
                                                                                 timeout=60_000)
    pg.wait_for_function(
        """() => [...document.querySelectorAll('.js-plotly-plot')].some(el => el.layout && el.layout.title
             && String(el.layout.title.text).includes('Cosine between your tokens'))""",
        timeout=60_000,
    )
    assert _prompt_heatmap_labels(pg) == ["'The'", "' capital'", "' of'", "' Italy'", "' is'"]
    # …and an edit typed on Tokenization (no Enter: the box updates as you type) is what Next-token reads.
    _open(pg, "Tokenization")
    line.fill("The capital of Spain is")
    expect(main.locator(".llmx-chips").first).to_contain_text(" Spain", timeout=30_000)
    _open(pg, "Next-token prediction")
    wait_for_app(pg, "Madrid")
    assert main.locator("textarea").first.input_value() == "The capital of Spain is"
    _assert_clean(page)


def test_default_prompt_is_kept_when_switching_pages(page):
    pg = page.page
    pg.goto(page.base + "/")
    wait_for_app(pg, "Try it: what comes next?")
    pg.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Next-token prediction").click()
    wait_for_app(pg, "Next-token prediction")
    # The new page's box can be empty for a moment while the frontend mounts it: wait for its settled value (an empty
    # final value would fail here), and the page computes from it.
    expect(pg.locator('[data-testid="stMain"] textarea').first).to_have_value("The capital of France is", timeout=30_000)
    wait_for_app(pg, "is rank 33 of")  # ' Lyon' after the default prompt


def test_prompt_from_a_shared_link_travels_to_the_next_page(page):
    """A link with ?prompt= opens Home with that prompt; the first page opened from the sidebar keeps it (found by
    the soak test: it used to fall back to the default there)."""
    pg = page.page
    main = pg.locator('[data-testid="stMain"]')
    pg.goto(page.base + "/?prompt=" + quote("The capital of Germany is"))
    wait_for_app(pg, "Most likely next token: ' Berlin'")
    for title in ("Attention & Transformers", "Next-token prediction"):
        _open(pg, title)
        expect(main.locator("textarea").first).to_have_value("The capital of Germany is", timeout=30_000)
    wait_for_app(pg, "Berlin")
    _assert_clean(page)


def test_generate_runs_as_a_fragment_and_the_share_link_keeps_its_settings(page):
    """Generate reruns only its own section; its settings sit outside it, so a change reruns the page and the
    sidebar's share link carries the new value (inside the fragment the link kept the old one)."""
    pg = page.page
    pg.goto(page.base + "/next_token?prompt=" + quote("Once upon a time"))
    wait_for_app(pg, "Generate a longer continuation")
    slider = pg.locator('[data-testid="stSlider"]').filter(has_text="New tokens").get_by_role("slider")
    slider.focus()
    slider.press("ArrowRight")  # 60 → 70 tokens
    expect(pg).to_have_url(re.compile(r"nt_len=70"), timeout=30_000)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    pg.get_by_role("button", name="Generate").click()
    pg.get_by_text(re.compile(r"tokens/s\*?\*? on this CPU|tokens/s on this CPU")).first.wait_for(timeout=120_000)
    pg.locator('[data-testid="stSidebar"]').get_by_text("Share this view").click()
    link = pg.locator('[data-testid="stPopoverBody"] code, [data-testid="stPopover"] code').first
    link.wait_for(timeout=30_000)
    assert "nt_len=70" in link.inner_text() and "prompt=Once+upon+a+time" in link.inner_text()
    _assert_clean(page)
