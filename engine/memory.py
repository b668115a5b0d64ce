"""glibc ``malloc`` settings for a long-running server whose every script run is a new thread.

Why: glibc gives threads their own heaps ("arenas", up to 8 per core) and keeps freed memory inside them for reuse.
Streamlit runs each script in a new thread and torch frees many medium-sized buffers (activations, logits), so the
server's resident memory ratcheted up visit after visit. Measured with ``make bench``'s sequence (every page, then
the heaviest actions) on one server: peak RSS 1,627 MB with glibc's defaults, 1,499–1,511 MB with the settings
below.

- ``M_ARENA_MAX`` 2: all threads share two heaps instead of up to sixteen here.
- ``M_MMAP_THRESHOLD`` 256 KB: larger blocks (most tensors) get their own mapping, returned to the system when freed
  (glibc's default threshold grows up to 32 MB after the first large free, and then keeps such blocks in the heap).
- ``M_TRIM_THRESHOLD`` 1 MB: free space at the top of a heap goes back to the system sooner.

Only memory placement changes; no number the app computes depends on it. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
SETTINGS = {M_ARENA_MAX: 2, M_MMAP_THRESHOLD: 256 * 1024, M_TRIM_THRESHOLD: 1024 * 1024}

_done = False


def tune_malloc() -> bool:
    """Apply :data:`SETTINGS` once per process; whether glibc took them all (False where there is no glibc)."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    return _done
