"""Real browser: the encoder next to the decoder on the Tokenization page (WordPiece vs byte-level BPE on the shared
prompt, emoji taken apart) and on the Embeddings page (semantic search over typed sentences); no traceback, nothing
fetched from another host."""

from __future__ import annotations

import pytest

from tests.browser.conftest import wait_for_app

pytestmark = pytest.mark.browser


def _clean(rp) -> None:
    assert rp.page.locator('[data-testid="stException"]').count() == 0, "a traceback is on screen"
    assert not rp.outside_requests, f"requests left the machine: {rp.outside_requests}"


def test_tokenization_shows_wordpiece_and_emoji_parts(page):
    p = page.page
    main = p.locator('[data-testid="stMain"]')
    p.goto(page.base + "/tokenization?prompt=Unbelievably%2C%20Paris%20%F0%9F%91%A9%E2%80%8D%F0%9F%92%BB%20codes")
    wait_for_app(p, "WordPiece tokens")
    _clean(page)
    assert main.get_by_text("[CLS]", exact=True).count() >= 1 and main.get_by_text("##", exact=False).count() >= 1
    wait_for_app(p, "1 zero-width joiner(s)")  # 👩‍💻 counted from the string: 2 symbols glued by 1 joiner
    assert main.get_by_text("2 symbol(s) glued by 1 zero-width joiner(s)", exact=False).count() == 1


def test_embeddings_searches_typed_sentences(page):
    p = page.page
    main = p.locator('[data-testid="stMain"]')
    p.goto(page.base + "/embeddings")
    wait_for_app(p, "Why a token vector is not a sentence vector", timeout_ms=240_000)
    _clean(page)
    box = main.get_by_role("textbox", name="Search for", exact=True)
    box.fill("when does the store open")
    box.press("Enter")
    p.wait_for_timeout(800)
    wait_for_app(p, "Best match for 'when does the store open'")
    caption = main.get_by_text("Best match for 'when does the store open'", exact=False).first.inner_text()
    assert "What time does the shop open?" in caption or "When are you open on Sundays?" in caption
    _clean(page)
