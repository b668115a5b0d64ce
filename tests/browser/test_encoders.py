"""Real browser: the encoders page on a fresh server: both readers drawn, a sentence typed, the encoder-decoder trained
with its live progress, a date translated; no traceback and no request to another host."""

from __future__ import annotations

import pytest

from tests.browser.conftest import SCREENSHOTS, full_screenshot, wait_for_app

pytestmark = pytest.mark.browser

TITLE = "Encoders, decoders, encoder-decoders"


def _clean(rp) -> None:
    page = rp.page
    assert page.get_by_text("Page not found").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback is on screen"
    assert not rp.outside_requests, f"requests left the machine: {rp.outside_requests}"


def test_encoders_page_reads_trains_and_translates(page):
    p = page.page
    main = p.locator('[data-testid="stMain"]')
    p.goto(page.base + "/encoders")
    wait_for_app(p, "Decoder: weight on later tokens")
    _clean(page)
    assert main.locator('[data-testid="stMetricValue"]').first.inner_text() == "0.0%"  # the causal decoder
    box = main.get_by_role("textbox", name="Sentence", exact=True)
    box.fill("She sat on the river bank.")
    box.press("Enter")
    p.wait_for_timeout(800)
    wait_for_app(p, "Decoder: weight on later tokens")
    assert main.locator(".js-plotly-plot").count() >= 2
    assert p.get_by_text("[CLS]").count() >= 1
    main.get_by_role("button", name="Train the encoder-decoder on this server").click()
    wait_for_app(p, "Held-out accuracy", timeout_ms=900_000)  # a busy 2-core machine can take minutes
    _clean(page)
    date = main.get_by_role("textbox", name="Date written out", exact=True)
    date.fill("14 July 1989")
    date.press("Enter")
    wait_for_app(p, "1989-07-14")
    assert main.get_by_text("correct").count() >= 1
    _clean(page)
    full_screenshot(p, SCREENSHOTS / "encoders-trained.png")


def test_post_models_say_they_are_not_here_and_show_the_code(page):
    """Default server (no LLMX_HUB_MODELS): GPT-2, BERT and T5 are described with runnable code, none is fetched."""
    p = page.page
    main = p.locator('[data-testid="stMain"]')
    p.goto(page.base + "/encoders?enc_hub=BERT%20base%20(uncased)")  # the URL holds the label shown
    wait_for_app(p, "BERT base (uncased) is not available here", timeout_ms=240_000)
    _clean(page)
    wait_for_app(p, "Code to run elsewhere")
    p.wait_for_timeout(500)
    assert 'pipeline("fill-mask", model="google-bert/bert-base-uncased")' in "\n".join(
        main.locator("code").all_inner_texts())
    main.get_by_role("radio", name="FLAN-T5 small").click()  # a segmented control's options are radio buttons
    wait_for_app(p, "FLAN-T5 small is not available here")
    p.wait_for_timeout(500)
    assert "AutoModelForSeq2SeqLM.from_pretrained" in "\n".join(main.locator("code").all_inner_texts())
    _clean(page)  # no request to the hub or anywhere else
