"""Real-browser fixtures: a `streamlit run` server on a free port and Playwright pages in the system Chromium.

Every page records requests to hosts other than the app's own and blocks them, so tests can assert the app works
with no network and makes no outside request.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int | None = None, extra_env: dict[str, str] | None = None, preload: bool = False,
                 warm: bool = False):
    """Start ``streamlit run`` and wait until it answers; returns ``(process, base_url)``.

    ``preload``: start it as ``make run`` does (``scripts/serve.py``: the model loads from the process's start)
    instead of plain ``streamlit run streamlit_app.py`` (Streamlit Cloud's way: the first visit loads it).
    ``warm``: with ``preload``, also let it open every page once after the load, as ``make run`` does (off by
    default: that is ~25 s of CPU a test would share).
    """
    port = port or _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LLMX_WARM_PAGES": "1" if warm else "0",
           **(extra_env or {})}
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"server-{port}.log", "w")  # noqa: SIM115 - closed with the process
    entry = [str(ROOT / "scripts" / "serve.py")] if preload else ["-m", "streamlit", "run", str(ROOT / "streamlit_app.py")]
    proc = subprocess.Popen(
        [sys.executable, *entry, "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early, see {log.name}")
        try:
            with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("streamlit did not start in 120 s")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def app_server():
    """Base URL of a fresh `streamlit run` of the app (one per test session)."""
    ARTIFACTS.mkdir(exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    proc, base = start_server()
    yield base
    stop_server(proc)


@pytest.fixture(scope="session")
def browser():
    """The system Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium (see .ci/run)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class RecordingPage:
    """A Playwright page plus the outside requests it tried (blocked) and the console errors it logged."""

    def __init__(self, page, base: str):
        self.page = page
        self.base = base
        self.outside_requests: list[str] = []
        self.console_errors: list[str] = []
        host = urlparse(base).netloc

        def route(r):
            url = r.request.url
            parsed = urlparse(url)
            if parsed.scheme in ("data", "blob", "about") or parsed.netloc == host:
                r.continue_()
            else:
                self.outside_requests.append(url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)


def new_page(browser, base: str, width: int = 1400, height: int = 1000) -> RecordingPage:
    context = browser.new_context(viewport={"width": width, "height": height})
    return RecordingPage(context.new_page(), base)


@pytest.fixture
def page(browser, app_server):
    """A fresh browser context on the app; outside requests are blocked and recorded in ``page.outside_requests``."""
    rp = new_page(browser, app_server)
    yield rp
    rp.page.context.close()


def wait_for_app(page, text: str, timeout_ms: int = 120_000) -> None:
    """Wait until ``text`` is visible in the main area and Streamlit has finished running the script."""
    page.locator('[data-testid="stMain"]').get_by_text(text, exact=False).first.wait_for(
        state="visible", timeout=timeout_ms
    )
    # Streamlit shows its "running" indicator only after a short delay: wait until it has been absent for a while,
    # not just at one instant (a slow page, e.g. one still loading the model, would otherwise look finished).
    deadline = time.time() + timeout_ms / 1000
    while True:
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
            timeout=max(1000, int((deadline - time.time()) * 1000)),
        )
        page.wait_for_timeout(700)
        if page.locator('[data-testid="stStatusWidget"]').count() == 0 or time.time() > deadline:
            return


def full_screenshot(page, path, width: int | None = None, max_height: int = 8000) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main container, so grow the viewport to fit it.

    Waits (up to 30 s, then shoots anyway) until no element is still a loading placeholder: on a busy machine charts
    and pills can arrive after the script finished, and the README gallery is made from these pictures.
    """
    try:
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stMain\"] [data-testid=\"stSkeleton\"]')", timeout=30_000
        )
    except Exception:  # noqa: BLE001 - a screenshot with a placeholder is still a useful artifact
        pass
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    size = page.viewport_size
    page.set_viewport_size({"width": width or size["width"], "height": min(max(height, size["height"]), max_height)})
    page.wait_for_timeout(800)  # let charts re-lay out
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
