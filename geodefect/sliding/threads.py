"""Split a numpy kernel's rows between the calling thread and one helper thread.

Stitching runs between model forwards, when the cores the model used are idle; numpy
releases the GIL inside its loops, so two threads on the large element-wise adds and the
argmax of a block take about half the time on a 2-core machine. Results are identical:
each pixel is computed by exactly one thread, with the same operations.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

#: arrays with fewer elements run on the calling thread only (a hand-off costs ~30 µs)
MIN_SPLIT_ELEMENTS = 1 << 17

_pool = None
_pool_lock = threading.Lock()


def _helper_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geodefect-stitch")
    return _pool


def split_rows(fn: Callable[[slice, int], None], n_rows: int, n_elements: int) -> None:
    """Call ``fn(rows, part)`` over ``rows`` covering ``0..n_rows``: once (``part`` 0) for small
    work or one CPU, else the first half here (part 0) and the second half on a helper
    thread (part 1). ``fn`` must only write rows it is given (and its own ``part``'s buffers).
    """
    if n_elements < MIN_SPLIT_ELEMENTS or n_rows < 2 or (os.cpu_count() or 1) < 2:
        fn(slice(0, n_rows), 0)
        return
    mid = n_rows // 2
    future = _helper_pool().submit(fn, slice(mid, n_rows), 1)
    try:
        fn(slice(0, mid), 0)
    finally:
        future.result()
