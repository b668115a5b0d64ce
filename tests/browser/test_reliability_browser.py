"""Hostile links and many users against a real server: nothing injected runs, no outside request, no state leaks."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.browser.conftest import wait_for_app
from tests.support.st_client import run_many_sync

pytestmark = pytest.mark.browser

PAYLOAD = (
    "</script><script>window.__pwned='script'</script>"
    "<img src=x onerror=\"window.__pwned='img'\"><svg onload=\"window.__pwned='svg'\"></svg> The capital of France is"
)


@pytest.mark.parametrize(
    ("stem", "key", "title"),
    [
        ("", "prompt", "Try it: what comes next?"),
        # its folded sections open, as a link can open them: bertviz's iframe and the generated tokens' table
        ("attention?at_bertviz=true&at_writing=true&at_by_hand=true", "prompt", "Attention"),
        ("tokenization", "prompt", "Tokenization"),
        ("next_token", "prompt", "Next-token prediction"),
        ("prompts", "pr_user", "Prompts"),
    ],
)
def test_script_payload_in_a_shared_link_executes_nothing(page, stem, key, title):
    pg = page.page
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(f"{page.base}/{stem}{'&' if '?' in stem else '?'}{key}={quote(PAYLOAD)}")
    wait_for_app(pg, title)
    if "at_bertviz" in stem:
        pg.wait_for_selector('iframe[title="st.iframe"], [data-testid="stIFrame"]', state="attached", timeout=60_000)
    pg.wait_for_timeout(2000)  # give any injected handler (iframes, images) time to fire
    for frame in pg.frames:  # the page and every iframe it embeds (bertviz, components)
        try:
            assert frame.evaluate("() => window.__pwned === undefined"), f"payload ran in {frame.url}"
        except Exception as exc:  # a detached frame is fine; an assertion is not
            if isinstance(exc, AssertionError):
                raise
    assert not dialogs
    assert pg.locator('[data-testid="stException"]').count() == 0
    assert not page.outside_requests  # the payload's <img src=x> must not become a request to another host


def test_many_sessions_at_once_no_errors_and_no_state_leak(app_server):
    """20 real sessions (websockets, like 20 browsers) on every kind of page at once; each sees its own prompt."""
    prompts = {"France": " Paris", "Italy": " Rome", "Japan": " Tokyo", "Germany": " Berlin"}
    pages, queries, expected = [], [], []
    others = ["tokenization", "embeddings", "temperature", "attention", "context_window", "prompts",
              "pretraining", "evaluation", "genai_landscape", "ml_to_llm", "next_token", "fine_tuning"]
    for i in range(20):
        country = list(prompts)[i % len(prompts)]
        if i % 2 == 0:  # home pages: their caption names the model's top token for *their* prompt
            pages.append("")
            queries.append("prompt=" + quote(f"The capital of {country} is"))
            expected.append(prompts[country])
        else:
            pages.append(others[i // 2 % len(others)])
            queries.append("prompt=" + quote(f"The capital of {country} is"))
            expected.append(None)
    results = run_many_sync(app_server, pages, queries, timeout=300)
    failures = [(r.page, r.exceptions, r.errors) for r in results if not r.ok or r.errors]
    assert not failures, failures
    for result, answer in zip(results, expected, strict=True):
        if answer is not None:
            caption = next((t for t in result.texts if t.startswith("Most likely next token")), "")
            assert f"'{answer}'" in caption, (answer, caption)


def test_a_long_text_on_pretraining_says_what_the_model_is_doing_section_by_section(page):
    """A pasted essay takes several float32 passes (seconds each on 2 cores): each section shows what it is computing
    while it computes, then its result (before, the baselines' two passes ran behind no message at all)."""
    from urllib.parse import urlencode

    text = ("The history of the printing press begins in the fifteenth century, when movable type changed how books "
            "were made and read across Europe. ") * 14  # ~330 tokens
    pg = page.page
    pg.goto(f"{page.base}/pretraining?{urlencode({'pt_text': text})}")
    pg.get_by_text("Scoring the text with the model").first.wait_for(timeout=120_000)
    pg.get_by_text("Scoring the shuffled words and the random tokens").first.wait_for(timeout=120_000)
    pg.get_by_text("Step ").first.wait_for(timeout=180_000)  # the page ran to its end
    assert pg.get_by_text("Scoring the shuffled words").count() == 0
    assert pg.get_by_text("Shuffling keeps every word").count() == 1
    assert pg.locator('[data-testid="stException"]').count() == 0
