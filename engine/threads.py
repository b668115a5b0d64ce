"""Intra-op thread count for the calling thread only.

``torch.set_num_threads`` is not per thread. It sets the calling thread's OpenMP count *and* a process-wide default
that every thread reads the first time it runs a torch op. Streamlit starts a new thread for each script run, so a
``set_num_threads(1)`` held by one session for a moment becomes the whole-run setting of any session whose thread
starts in that moment. That changes its speed and, through how sums are split over threads, the last digits of its
numbers (the class soak caught a fine-tune's loss reading 0.509 instead of 0.508).

OpenMP's own ``omp_set_num_threads`` changes only the calling thread's count, the one torch's parallel loops use.
This module calls it on the OpenMP runtime torch loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Iterator
from functools import lru_cache


@lru_cache(maxsize=1)
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime already loaded by torch (libgomp or libiomp), or None where it cannot be found."""
    import torch  # noqa: F401  (loads the runtime)

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if line.rstrip().endswith((".so", ".so.1", ".so.5"))}
    except OSError:
        return None
    for path in sorted(paths):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(("libgomp", "libiomp", "libomp")):
            try:
                lib = ctypes.CDLL(path)  # already mapped: the same instance torch uses
                lib.omp_get_max_threads.restype = ctypes.c_int
                lib.omp_set_num_threads.argtypes = [ctypes.c_int]
                return lib
            except (OSError, AttributeError):
                continue
    return None


def available() -> bool:
    """Whether the per-thread setting is possible here (Linux with torch's OpenMP runtime found)."""
    return _openmp() is not None


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op threads in the calling thread only, restored afterwards; other threads are untouched.

    Where the OpenMP runtime cannot be found this does nothing (a speed setting only: results do not need it).
    """
    lib = _openmp()
    if lib is None:
        yield
        return
    import torch

    torch.get_num_threads()  # torch sets a thread's count on its first op: make that happen before ours, not after
    before = lib.omp_get_max_threads()
    lib.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        lib.omp_set_num_threads(before)


#: Intra-op threads for a page's own script run. One: on this project's 2-core machines a script's torch ops
#: rarely have the cores to themselves (other sessions, a background training job, or the browser on a laptop that
#: runs the app locally). libgomp then stops spin-waiting, and every parallel op of a two-thread run waits for the
#: scheduler to wake its second thread. Measured (``make bench``, the browser on the same 2 cores, 10 pages each
#: opened in a fresh tab, two runs each): the pages stopped running after 50.7 s in total with one thread per
#: script against 61.2 s with two. Alone on an idle server, two threads would be ~13 % faster. ``LLMX_SCRIPT_THREADS``
#: overrides it. Background jobs (training, packing) keep the process's default.
SCRIPT_THREADS = max(1, int(os.environ.get("LLMX_SCRIPT_THREADS", "1") or 1))


def set_thread_intra_op(n: int) -> None:
    """Give the calling thread ``n`` intra-op threads from now on (other threads untouched; nothing restored).

    For a thread that does one job and ends, such as a Streamlit script run: call it at the start of the run.
    """
    lib = _openmp()
    if lib is None:
        return
    import torch

    torch.get_num_threads()  # torch sets a thread's count on its first op: make that happen before ours, not after
    lib.omp_set_num_threads(int(n))


class OtherProcessesLoad:
    """Cores that other processes keep busy on this process's CPUs, from Linux's ``/proc/stat``.

    Why: a two-thread parallel op waits at every barrier for its slower thread, so when another process (a browser
    drawing the page on the same machine, a build) takes part of a core, a pass on every core stalls and runs slower
    than on one core fewer. Measured here, a 120-token **Generate** drawn by Chromium on the same 2 cores: 15 tokens/s
    on both cores against 20 on one; the same request drawn by a browser elsewhere: 36 on both against 22 on one.

    The figure is the average over the time since the previous reading, taken at most every ``interval`` seconds;
    a reading after more than ``stale`` seconds starts a new window and counts as idle.
    """

    def __init__(self, interval: float = 0.2, stale: float = 2.0) -> None:
        self.interval, self.stale = interval, stale
        self._lock = threading.Lock()
        self._last: tuple[float, float, float] | None = None  # (wall, busy CPU-s of our CPUs, our own CPU-s)
        self._value = 0.0
        try:
            self._cpus = {f"cpu{n}" for n in os.sched_getaffinity(0)}
            self._tick = float(os.sysconf("SC_CLK_TCK"))
        except (AttributeError, OSError, ValueError):
            self._cpus = set()

    def _sample(self) -> tuple[float, float, float] | None:
        if not self._cpus:
            return None
        busy = 0.0
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                for line in stat:
                    name, _, rest = line.partition(" ")
                    if name in self._cpus:
                        ticks = [int(v) for v in rest.split()]
                        busy += sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        except (OSError, ValueError, IndexError):
            return None
        own = os.times()
        return time.monotonic(), busy / self._tick, own.user + own.system

    def cores(self) -> float:
        """Cores other processes used on average since the previous reading (0 when it cannot be read)."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.interval:
                return self._value
            sample = self._sample()
            if sample is None:
                return 0.0
            if self._last is None or sample[0] - self._last[0] > self.stale:
                self._value = 0.0
            else:
                wall = sample[0] - self._last[0]
                self._value = max(0.0, (sample[1] - self._last[1]) - (sample[2] - self._last[2])) / wall
            self._last = sample
            return self._value


#: The process's reading of other processes' load (shared: one window for every caller).
OTHER_PROCESSES = OtherProcessesLoad()
