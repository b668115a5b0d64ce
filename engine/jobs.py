"""One piece of work run once in a background thread while any number of readers poll its progress.

The one job mechanism of the app: model loads (:class:`engine.loader.LoadJob`), and every training run shared by the
sessions of a server (diffusion, the encoder-decoder) or owned by one session (fine-tuning, preference tuning). The
work reports progress through :meth:`BackgroundJob.report`; each page session reads ``fraction`` / ``message`` /
``values`` and draws its own progress (no Streamlit here: a thread must never touch a page's elements).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: ``report(step, total, value=None, message=None)``: what a job's work calls to record its progress.
Reporter = Callable[..., None]


class BackgroundJob:
    """Run ``work(report)`` once in a daemon thread; ``report(step, total, value=None, message=None)`` records progress.

    Attributes:
        step / total: Progress so far (``fraction`` is their ratio; ``total`` 1 with a fractional ``step`` works too).
        message: The latest progress message (e.g. the loading stage).
        values: Every reported value, in order (e.g. the loss at each report).
        result: What ``work`` returned, once ``done``.
        error: ``"Type: text"`` of the exception if ``work`` failed (shown on the page), else None.
        exception: The exception itself (after :meth:`failure` turned it into what readers should see).
        stop_requested: Set by :meth:`request_stop`; long work checks it between steps and returns early.
    """

    def __init__(self, work: Callable[[Reporter], Any], name: str = "llmx-background-job"):
        self._work = work
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.step: float = 0
        self.total: float = 1
        self.message = "Starting…"
        self.values: list[float] = []
        self.result: Any = None
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.started = self.finished = 0.0
        self._done = threading.Event()
        self._stop = threading.Event()

    def start(self) -> BackgroundJob:
        """Start the work (a second call does nothing)."""
        with self._lock:
            if self._thread is None:
                self.started = time.perf_counter()
                self._thread = threading.Thread(target=self._run, daemon=True, name=self._name)
                self._thread.start()
        return self

    def report(self, step: float, total: float = 1, value: float | None = None, message: str | None = None) -> None:
        """Record progress: ``step`` of ``total``, an optional value for a live curve and an optional message."""
        self.step, self.total = step, max(total, 1e-12)
        if value is not None:
            self.values.append(float(value))
        if message is not None:
            self.message = message

    def failure(self, err: Exception) -> BaseException:
        """What readers see when ``work`` raised ``err`` (subclasses turn it into their own error type)."""
        return err

    def _run(self) -> None:
        try:
            self.result = self._work(self.report)
        except Exception as err:  # noqa: BLE001 - shown to the reader, never raised in a foreign thread
            self.exception = self.failure(err)
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self.finished = time.perf_counter()
            self._done.set()

    def request_stop(self) -> None:
        """Ask the work to stop early (it checks :attr:`stop_requested` between steps)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def fraction(self) -> float:
        return 1.0 if self.done and self.error is None else min(1.0, max(0.0, self.step / self.total))

    @property
    def elapsed(self) -> float:
        """Seconds since the work started (frozen once it finished)."""
        if not self.started:
            return 0.0
        return (self.finished or time.perf_counter()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work is done (True) or ``timeout`` seconds passed (False)."""
        return self._done.wait(timeout)
