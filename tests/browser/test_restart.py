"""Real browser: the server restarts under a class of 20 open sessions, and every session recovers with its URL state.

After the restart each browser reconnects by itself (Streamlit's reconnect state); its next request reruns the page
on the new server from the page's URL. What lived only in the old server's memory is gone, by design.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, quote, urlparse

import pytest

from tests.browser.conftest import ARTIFACTS, _free_port, start_server, stop_server

pytestmark = pytest.mark.browser

SESSIONS = 20
CITIES = ["Italy", "Spain", "Japan", "Peru", "Egypt"]


def _errors(pg) -> int:
    return pg.locator('[data-testid="stException"], [data-testid="stMain"] [data-testid="stAlertContentError"]').count()


def _settled(pg, timeout_ms: int = 240_000) -> None:
    pg.get_by_text("Most likely next token:").first.wait_for(timeout=timeout_ms)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def test_twenty_sessions_survive_a_server_restart(browser):
    port = _free_port()
    proc, base = start_server(port=port)
    # Tabs of a few browser contexts: every tab is its own Streamlit session (its own websocket).
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(4)]
    tabs, figures = [], {"sessions": SESSIONS}
    try:
        for i in range(SESSIONS):
            pg = contexts[i % len(contexts)].new_page()
            pg.goto(f"{base}/?prompt={quote(f'The capital of {CITIES[i % len(CITIES)]} is')}")
            tabs.append(pg)
        for pg in tabs:
            _settled(pg)
        stop_server(proc)
        proc, base = start_server(port=port)  # the same address: every open tab reconnects to the new server
        recovered = 0
        for pg in tabs:
            prompt = parse_qs(urlparse(pg.url).query)["prompt"][0]
            pg.locator('[data-testid="stSidebar"]').get_by_text("Presentation mode").click(timeout=120_000)
            pg.wait_for_function("() => location.search.includes('present=true')", timeout=120_000)
            _settled(pg)
            box = pg.locator('[data-testid="stMain"] textarea').first
            if box.input_value() == prompt and _errors(pg) == 0:
                recovered += 1
        figures.update(recovered=recovered, errors=sum(_errors(pg) for pg in tabs))
        assert recovered == SESSIONS and figures["errors"] == 0, figures
    finally:
        (ARTIFACTS / "restart.json").write_text(json.dumps(figures, indent=2))
        for ctx in contexts:
            ctx.close()
        stop_server(proc)
