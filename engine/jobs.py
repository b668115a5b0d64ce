"""A piece of work that runs once in a background thread while any number of readers poll its progress.

Used for training runs shared by every session of a server: the cache holds one :class:`BackgroundJob`, each page
session reads ``progress`` / ``partial`` and draws its own progress bar (no Streamlit here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class BackgroundJob:
    """Run ``work(report)`` once in a daemon thread; ``report(step, total, value)`` records progress.

    Attributes:
        step / total: Progress so far (``fraction`` is their ratio).
        values: Every reported value, in order (e.g. the loss at each report).
        result: What ``work`` returned, once ``done``.
        error: The exception text if ``work`` failed.
    """

    def __init__(self, work: Callable[[Callable[[int, int, float], None]], Any]):
        self._work = work
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.step, self.total = 0, 1
        self.values: list[float] = []
        self.result: Any = None
        self.error: str | None = None
        self.started = self.finished = 0.0
        self._done = threading.Event()

    def start(self) -> BackgroundJob:
        """Start the work (a second call does nothing)."""
        with self._lock:
            if self._thread is None:
                self.started = time.perf_counter()
                self._thread = threading.Thread(target=self._run, daemon=True, name="llmx-background-job")
                self._thread.start()
        return self

    def _report(self, step: int, total: int, value: float) -> None:
        self.step, self.total = int(step), max(1, int(total))
        self.values.append(float(value))

    def _run(self) -> None:
        try:
            self.result = self._work(self._report)
        except Exception as err:  # noqa: BLE001 - shown to the reader, never raised in a foreign thread
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self.finished = time.perf_counter()
            self._done.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def fraction(self) -> float:
        return 1.0 if self.done and self.error is None else min(1.0, self.step / self.total)

    @property
    def elapsed(self) -> float:
        if not self.started:
            return 0.0
        return (self.finished or time.perf_counter()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work is done (True) or ``timeout`` seconds passed (False)."""
        return self._done.wait(timeout)
