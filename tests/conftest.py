"""Shared fixtures: the real embedded model (loaded once per process), a tiny random model, and AppTest helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY = str(ROOT / "streamlit_app.py")
#: Generous: the first AppTest run in a process loads the model (a few seconds, ~35 s on a first-ever start).
APPTEST_TIMEOUT = 180


@pytest.fixture(scope="session")
def real_lm():
    """The embedded SmolLM2-135M-Instruct, shared by every test (never modify it)."""
    from engine.loader import LOADS

    # The same shared load the app's pages use (components.model.load_model), so AppTest runs in this process
    # reuse it instead of holding a second copy.
    return LOADS.start(None).model()


@pytest.fixture(scope="session")
def tiny_lm(real_lm):
    """A 2-layer random llama with the real tokenizer: fast, deterministic, meaningless predictions."""
    from engine.tiny import build_tiny_lm

    return build_tiny_lm(real_lm.tokenizer)


def app_page(stem: str, query: dict[str, str] | None = None, timeout: float = APPTEST_TIMEOUT):
    """An AppTest of the whole app switched to ``pages/<stem>.py`` and run once.

    Args:
        stem: Page file name without ``.py`` (``"home"`` for the home page).
        query: URL query parameters to start with (seed bound widgets, e.g. ``{"prompt": "Hi"}``).
        timeout: Seconds each run may take.
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    # Open the page directly, like a deep link: query parameters then seed that page's bound widgets.
    if stem != "home":
        at.switch_page(f"pages/{stem}.py")
    at.run()
    return at


def assert_no_exception(at) -> None:
    """Fail with the page's exception text if any element is an exception (a traceback on screen)."""
    errors = [e.value for e in at.exception]
    assert not errors, f"page raised: {errors}"


def chart_specs(at) -> list[dict]:
    """The JSON specs of every plotly chart on the page."""
    import json

    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def metric_value(at, label: str) -> str:
    """The displayed value of the ``st.metric`` with ``label``."""
    return next(m.value for m in at.metric if m.label == label)


def html_text(at) -> str:
    """All ``st.html`` bodies on the page, joined (token chips, surprise views)."""
    return " ".join(h.proto.body for h in at.get("html"))
