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
