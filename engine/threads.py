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
