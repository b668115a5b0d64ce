"""``scripts/serve.py``'s warm-up gives way to visitors: it opens its next page only while the server is quiet."""

from __future__ import annotations

import threading
import time

from scripts.serve import _wait_quiet


def test_the_warm_up_waits_while_the_server_computes_and_goes_on_when_it_is_quiet():
    busy_until = time.monotonic() + 1.0
    finished = threading.Event()

    def visitor() -> None:  # a page run: CPU for a second
        x = 0
        while time.monotonic() < busy_until:
            x += 1
        finished.set()

    t = threading.Thread(target=visitor)
    t.start()
    time.sleep(0.1)
    _wait_quiet(window=0.1, longest=20)
    assert finished.is_set()  # it waited for the visitor's run to end
    t.join()
    start = time.monotonic()
    _wait_quiet(window=0.1, longest=20)
    assert time.monotonic() - start < 5  # quiet: on at once (well before the 20 s bound)


def test_the_warm_up_goes_on_after_its_longest_wait_however_busy_the_server_stays():
    stop = threading.Event()

    def busy() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    t = threading.Thread(target=busy)
    t.start()
    try:
        start = time.monotonic()
        _wait_quiet(window=0.1, longest=0.5)
        assert time.monotonic() - start < 5  # returned (a class that never pauses still gets its pages warmed)
    finally:
        stop.set()
        t.join()


def test_a_server_stopped_while_a_background_thread_computes_in_torch_exits_cleanly(tmp_path):
    """``make run`` stopped with SIGTERM while its preload thread (the load, the 4-bit packing, a warm-up page) is
    inside a torch kernel. Python's interpreter shutdown then aborted the process: exit -6, "terminate called without
    an active exception" (seen stopping a server 12 s after its start). It must exit 0."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # serve.py as `make run` starts it, with the preload replaced by a thread that only multiplies matrices.
    code = (
        "import sys, torch\n"
        "sys.path.insert(0, 'scripts')\n"
        "import serve\n"
        "def busy():\n"
        "    print('busy', flush=True)\n"
        "    a = torch.randn(1500, 1500)\n"
        "    while True:\n"
        "        a @ a\n"
        "serve.preload = busy\n"
        f"sys.argv = ['serve.py', '--server.port', '{port}', '--server.headless', 'true', '--server.address', '127.0.0.1']\n"
        "serve.main()\n"
    )
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "LLMX_WARM_PAGES": "0"})
        try:
            deadline = time.monotonic() + 120
            while "busy" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()[-800:]
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as r:
                assert r.status == 200
            time.sleep(1.0)  # the thread is now inside matrix products
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "terminate called" not in text, text[-800:]
    assert rc == 0, text[-800:]
