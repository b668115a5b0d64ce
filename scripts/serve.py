"""``make run``: the app's server, with the model loading from the moment the process starts.

``streamlit run streamlit_app.py`` runs no app code until the first visitor connects, so that visitor waited for
the libraries to import and the model to load. Here the load starts in a background thread as soon as Streamlit's
server listens (the same ``engine.loader.LOADS`` job every page then finds, loading or done), and the app's own
modules are imported meanwhile. Not earlier: Streamlit and torch would then import under one interpreter lock, the
server answered ~0.7 s later, and the browser only starts loading the app's code once it answers (six starts each:
7.0 s to the first prediction on average against 7.7 s). Streamlit Community Cloud runs ``streamlit_app.py`` directly and loads on the first
visit, as before.

Once the model is ready and the server answers, every page is opened once through the server's own websocket, one
after another with its default settings (home first), as a visitor would: the shared caches then hold each page's
default example, so the class's first visitor of a page does not wait for it. Every number is still computed by the
model, only earlier. ``LLMX_WARM_PAGES=0`` turns this off.

Usage: ``python scripts/serve.py [streamlit run options, e.g. --server.port 8501]``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "llmx: model ready at server start"
WARM_LINE = "llmx: every page's default example computed"
#: Set to ``0`` to skip opening every page once at start (the tests' servers do, to keep their CPU for the test).
WARM_ENV = "LLMX_WARM_PAGES"

log = logging.getLogger("llmx.serve")


def preload() -> None:
    """Load the default (or ``LLMX_MODEL``) model, then pack its 4-bit copy; a failure is left for the pages to show
    (a visitor's session asks again and sees the reason and the fix)."""
    t0 = time.perf_counter()
    from engine.loader import LOADS

    # The load runs in its own thread. Meanwhile this one imports what the first page run imports, while the browser
    # is still fetching the app's code (three alternated starts each: first prediction 5.6 s against 6.1 s).
    job = LOADS.start(None)
    import components.challenges  # noqa: F401
    import components.figures.bars  # noqa: F401
    import components.figures.maps  # noqa: F401
    try:
        lm = job.model()
    except Exception as err:  # noqa: BLE001 - the pages report it with its fix; the server keeps running
        print(f"llmx: model not loaded at server start ({err})", file=sys.stderr, flush=True)
        return
    print(f"{READY_LINE} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    lm.prepare_fast_decoder()
    if os.environ.get(WARM_ENV, "1").strip() != "0":
        warm_pages()


def _server_url() -> str:
    """This process's own server as a client reaches it (loopback unless the server listens on one address)."""
    from streamlit import config

    address = config.get_option("server.address") or "127.0.0.1"
    if address in ("0.0.0.0", "::"):
        address = "127.0.0.1"
    base_path = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"http://{address}:{config.get_option('server.port')}" + (f"/{base_path}" if base_path else "")


async def _open_page(base: str, stem: str, timeout: float) -> bool:
    """One session opens ``stem`` with its default settings; True when its run ended without an error."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    url = base.replace("http://", "ws://", 1) + "/_stcore/stream"
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout) as ws:
        msg = BackMsg()
        msg.rerun_script.page_name = "" if stem == "home" else stem
        await ws.send(msg.SerializeToString())
        deadline = time.monotonic() + timeout
        failed = False
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
            kind = fm.WhichOneof("type")
            if kind == "page_not_found":
                failed = True
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                failed |= fm.delta.new_element.WhichOneof("type") == "exception"
            elif kind == "script_finished" and fm.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return not failed and fm.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY


def _wait_quiet(window: float = 0.3, busy: float = 0.2, longest: float = 10.0) -> None:
    """Until this process used less than ``busy`` of a core over ``window`` seconds (at most ``longest`` seconds).

    Visitors come first: the warm-up opens its next page only while nobody's page is computing (and after the 4-bit
    copy is packed), so a visitor who arrives during the warm-up shares the cores with at most one page of it.
    """
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        cpu = time.process_time()
        time.sleep(window)
        if time.process_time() - cpu < busy * window:
            return


def warm_pages(stems: list[str] | None = None, base: str | None = None, timeout: float = 300.0) -> list[str]:
    """Open every page once (home first, one at a time) so the shared caches hold each default example.

    Returns the pages whose run failed or timed out (logged; a visitor then computes that page as without warming).
    """
    from components.frame import available_pages

    base = base or _server_url()
    stems = stems or [p.stem for p in available_pages()]
    stems = sorted(stems, key=lambda s: s != "home")  # home first: the page the first visitor opens
    t0, failed = time.perf_counter(), []
    for stem in stems:
        _wait_quiet()
        try:
            ok = asyncio.run(_open_page(base, stem, timeout))
        except Exception as err:  # noqa: BLE001 - warming is an optimisation: the page still works on a visit
            log.warning("llmx: warming %s failed: %s", stem, err)
            ok = False
        if not ok:
            failed.append(stem)
    done = f"{WARM_LINE} ({len(stems) - len(failed)} of {len(stems)} pages, {time.perf_counter() - t0:.1f} s)"
    print(done + (f"; not warmed: {', '.join(failed)}" if failed else ""), file=sys.stderr, flush=True)
    return failed


def _wait_for_server(timeout: float = 60.0) -> bool:
    """Until this process's server answers (its address is read each time: the command line sets it after this
    thread starts); False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(_server_url() + "/_stcore/health", timeout=2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _start() -> None:
    _wait_for_server()  # load anyway if it never answers: a page may still need it
    preload()


def main() -> None:
    sys.path.insert(0, str(ROOT))
    # Streamlit is imported before the preload thread starts (that thread imports parts of it too: two threads
    # importing one package at once can deadlock); the thread only waits for the server, which needs it anyway.
    from streamlit.web import cli

    from components.frame import leave_pages_directory_mode

    leave_pages_directory_mode()  # from the first run on: the first visitor never sees the pages/ folder's list
    threading.Thread(target=_start, name="llmx-preload", daemon=True).start()
    sys.argv = ["streamlit", "run", str(ROOT / "streamlit_app.py"), *sys.argv[1:]]
    try:
        cli.main()
        code = 0
    except SystemExit as stop:  # click ends this way, on SIGTERM too once Streamlit has stopped its server
        code = stop.code
    _leave(code)


def _leave(code) -> None:
    """Exit with ``code`` once Streamlit has stopped, without Python's interpreter shutdown.

    That shutdown aborts the process (exit 134, "terminate called without an active exception") when a daemon thread
    is still inside a torch kernel: the load, the 4-bit packing or a warm-up page, if the server is stopped while they
    compute. Streamlit has closed its sessions by now; nothing is left to clean up but the output buffers.
    """
    if code is not None and not isinstance(code, int):  # sys.exit("message") prints it and exits 1
        print(code, file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


if __name__ == "__main__":
    main()
