"""A minimal Streamlit websocket client: opens real sessions against a running server, like browsers would.

Used by the benchmark's classroom figure and the many-users reliability test. It speaks Streamlit's own protobuf
protocol (``BackMsg`` / ``ForwardMsg``) over ``/_stcore/stream``, runs one page per session and records how long the
script took to finish and whether any element was an exception.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


@dataclass
class SessionResult:
    """What one simulated visitor saw."""

    page: str
    seconds: float
    ok: bool
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # st.error boxes
    texts: list[str] = field(default_factory=list)  # markdown bodies, for assertions


async def run_session(base_url: str, page: str = "", query_string: str = "", timeout: float = 120.0) -> SessionResult:
    """Open one session, run ``page`` (its URL path; "" for home) and wait for the script to finish."""
    url = base_url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
    start = time.perf_counter()
    result = SessionResult(page=page, seconds=0.0, ok=False)
    try:
        async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout) as ws:
            msg = BackMsg()
            msg.rerun_script.query_string = query_string
            msg.rerun_script.page_name = page
            await ws.send(msg.SerializeToString())
            while True:
                data = await asyncio.wait_for(ws.recv(), timeout=timeout)
                fm = ForwardMsg()
                fm.ParseFromString(data)
                kind = fm.WhichOneof("type")
                if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                    el = fm.delta.new_element
                    which = el.WhichOneof("type")
                    if which == "exception":
                        result.exceptions.append(f"{el.exception.type}: {el.exception.message}")
                    elif which == "alert" and el.alert.format == 1:  # Alert.ERROR
                        result.errors.append(el.alert.body)
                    elif which == "markdown":
                        result.texts.append(el.markdown.body)
                elif kind == "page_not_found":
                    result.errors.append(f"page not found: {fm.page_not_found.page_name}")
                elif kind == "script_finished":
                    result.ok = not result.exceptions and fm.script_finished == 0  # FINISHED_SUCCESSFULLY
                    break
    except Exception as exc:  # noqa: BLE001 - a failed session is a measured error, not a crash
        result.exceptions.append(f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


async def run_many(base_url: str, pages: list[str], query_strings: list[str] | None = None,
                   timeout: float = 120.0) -> list[SessionResult]:
    """Run one session per entry of ``pages`` concurrently."""
    qs = query_strings or [""] * len(pages)
    return await asyncio.gather(*(run_session(base_url, p, q, timeout) for p, q in zip(pages, qs, strict=True)))


def run_many_sync(base_url: str, pages: list[str], query_strings: list[str] | None = None,
                  timeout: float = 120.0) -> list[SessionResult]:
    """Blocking wrapper around :func:`run_many`; runs its own event loop in a worker thread, so it also works where
    a loop is already running (e.g. next to Playwright's sync API)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run_many(base_url, pages, query_strings, timeout)).result()
