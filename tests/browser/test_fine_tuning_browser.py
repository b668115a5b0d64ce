"""Real browser: the Fine-tuning page takes an upload of each format (Playwright's ``set_input_files``), trains with a
live curve and a Stop button, offers the PEFT download; hostile uploads get one clear message, no traceback and no
script run in Chromium."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import SCREENSHOTS, full_screenshot, wait_for_app

pytestmark = pytest.mark.browser

QA = [("What is our class mascot?", "A purple owl."), ("Who teaches Room 12?", "Ms. Rivera."),
      ("What is the class pet?", "A tortoise called Biscuit."), ("Where is the trip?", "The city aquarium."),
      ("What colour is the door?", "Bright yellow."), ("What is the robot called?", "Bolt.")]
UPLOADS = {
    "qa.csv": ("prompt,response\n" + "\n".join(f'"{q}","{a}"' for q, a in QA)).encode(),
    "chat.jsonl": "\n".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                      {"role": "assistant", "content": a}]}) for q, a in QA).encode(),
    "lines.txt": "\n".join(f"{q} {a}" for q, a in QA).encode(),
}
HOSTILE = {
    "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10, "looks like a binary file"),
    "empty.csv": (b"", "The file is empty"),
    "latin1.txt": ("caf\u00e9 cr\u00e8me".encode("latin-1"), "is not valid UTF-8"),
    "nested.jsonl": (b'{"text": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested more than"),
    "formula.csv": (b'prompt,response\nQ,"=HYPERLINK(""http://x"",""click"")"\n', "spreadsheet formula"),
    "script.jsonl": (b'{"text": "<script>alert(1)</script>"}\n{"text": "<img src=x onerror=alert(2)>"}',
                     "contains HTML markup"),
    "columns.csv": (b"question,answer\nQ,A\n", "must name a"),
}


def _metric(main, label: str) -> str:
    box = main.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _upload(rp, name: str, data: bytes) -> None:
    rp.page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])


def _clean(rp) -> None:
    assert rp.page.get_by_text("Page not found").count() == 0
    assert rp.page.locator('[data-testid="stException"]').count() == 0, "a traceback is on screen"
    assert not rp.outside_requests, rp.outside_requests


def test_upload_each_format_then_train_with_live_curve_and_stop(page):
    rp = page
    rp.page.goto(rp.base + "/fine_tuning?ft_source=Upload&ft_steps=150&ft_lr=0.0003")
    wait_for_app(rp.page, "Upload a .txt, .csv or .jsonl file", timeout_ms=300_000)
    main = rp.page.locator('[data-testid="stMain"]')
    for name, data in UPLOADS.items():
        _upload(rp, name, data)
        rp.page.wait_for_timeout(500)
        wait_for_app(rp.page, "Train / validation", timeout_ms=300_000)
        main.locator('[data-testid="stMetric"]').filter(has_text="Train / validation").get_by_text(
            "5 / 1").wait_for(timeout=120_000)
        assert _metric(main, "Examples") == "6", name
        _clean(rp)
    # masked prompt tokens are drawn grey and struck through (chat data)
    assert main.locator(".llmx-chip").count() > 0
    main.get_by_role("button", name=re.compile(r"Fine-tune \d+ steps")).click(timeout=300_000)
    main.get_by_role("button", name="Stop").wait_for(timeout=120_000)
    # the live progress, redrawn every second by the fragment while the thread trains
    main.get_by_text(re.compile(r"Step [1-9]\d* of 150")).first.wait_for(timeout=600_000)
    main.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=120_000)  # the live loss curve
    main.get_by_role("button", name="Stop").click()
    main.get_by_text("4. What it learned").wait_for(timeout=600_000)
    steps = _metric(main, "Training time")
    assert steps.endswith(" s")
    # below the probes (each a short generation by both models): wait for them, then the download
    main.get_by_role("button", name="Download the adapter (PEFT, .zip)").wait_for(timeout=300_000)
    main.get_by_text("PeftModel.from_pretrained").first.wait_for(timeout=60_000)
    _clean(rp)
    full_screenshot(rp.page, SCREENSHOTS / "fine_tuning_live.png")


def test_hostile_uploads_get_a_clear_message_and_run_no_script(page):
    rp = page
    dialogs = []
    rp.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    rp.page.goto(rp.base + "/fine_tuning?ft_source=Upload")
    wait_for_app(rp.page, "Upload a .txt, .csv or .jsonl file", timeout_ms=300_000)
    main = rp.page.locator('[data-testid="stMain"]')
    for name, (data, message) in HOSTILE.items():
        _upload(rp, name, data)
        main.get_by_text(message).first.wait_for(timeout=120_000)
        _clean(rp)
    # over the upload cap: Streamlit's own uploader refuses it in the browser (server.maxUploadSize = 1 MB)
    _upload(rp, "big.txt", b"word\n" * (2 * 1024 * 1024 // 5))
    main.get_by_text("must be 1").first.wait_for(timeout=60_000)
    _clean(rp)
    assert dialogs == [], f"a script ran: {dialogs}"
    assert main.locator("img[src='x']").count() == 0
