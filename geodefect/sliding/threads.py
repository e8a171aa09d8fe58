"""Helper threads: split a numpy kernel's rows between two threads; process items behind the caller.

Stitching runs between model forwards, when the cores the model used are idle; numpy
releases the GIL inside its loops, so two threads on the large element-wise adds and the
argmax of a block take about half the time on a 2-core machine. Results are identical:
each pixel is computed by exactly one thread, with the same operations.

:class:`OrderedWorker` processes items (stitched blocks to encode and write) on one helper
thread, in order, while the caller goes on with the next model forward;
:func:`compute_ahead` runs the next model forward on one while the caller stitches.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

#: arrays with fewer elements run on the calling thread only (a hand-off costs ~30 µs)
MIN_SPLIT_ELEMENTS = 1 << 17

_pool = None
_pool_lock = threading.Lock()


def usable_cpus() -> int:
    """CPUs this process may run on: its share when a Dask LocalCluster set ``GEODEFECT_USABLE_CPUS``
    (:func:`geodefect.distributed.worker_env`: N workers on N cores get one each), else its
    affinity mask where the OS has one."""
    share = os.environ.get("GEODEFECT_USABLE_CPUS", "").strip()
    if share.isdigit() and int(share) >= 1:
        return int(share)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _helper_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geodefect-stitch")
    return _pool


def split_rows(fn: Callable[[slice, int], None], n_rows: int, n_elements: int) -> None:
    """Call ``fn(rows, part)`` over ``rows`` covering ``0..n_rows``: once (``part`` 0) for small
    work or one usable CPU (:func:`usable_cpus`), else the first half here (part 0) and the second
    half on a helper thread (part 1). ``fn`` must only write rows it is given (and its own
    ``part``'s buffers).
    """
    if n_elements < MIN_SPLIT_ELEMENTS or n_rows < 2 or usable_cpus() < 2:
        fn(slice(0, n_rows), 0)
        return
    mid = n_rows // 2
    future = _helper_pool().submit(fn, slice(mid, n_rows), 1)
    try:
        fn(slice(0, mid), 0)
    finally:
        future.result()


def compute_ahead(items, fn: Callable, *, ahead: bool):
    """Yield ``(key, get)`` for each ``(key, value)`` of ``items``; ``get()`` returns ``fn(value)``.

    Without ``ahead``, ``get`` calls ``fn`` there and then. With ``ahead``, ``fn`` runs on one helper
    thread, one item ahead: when item k is handed out, item k + 1 is taken from ``items`` (on the
    caller's thread) and its call queued behind item k's, so that it runs while the caller works
    with item k's result. Road inference runs the model forward this way where the model leaves a
    core free: stitching and reading then overlap the next forward (ONNX Runtime and torch release
    the GIL). The results are the same, computed by the same calls in the same order; one more
    item's result is alive at a time. An error of ``fn`` is raised by ``get``; on exit the queued
    call is cancelled and the running one waited for.
    """
    import functools

    if not ahead:
        for key, value in items:
            yield key, functools.partial(fn, value)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geodefect-forward")
    try:
        source = iter(items)
        current = next(source, None)
        future = pool.submit(fn, current[1]) if current is not None else None
        while current is not None:
            following = next(source, None)
            queued = pool.submit(fn, following[1]) if following is not None else None
            yield current[0], future.result
            current, future = following, queued
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class OrderedWorker:
    """Call ``fn(item)`` for each submitted item on one helper thread, in submission order.

    The caller goes on (e.g. with the next model forward) while earlier items are processed:
    road inference writes each stitched block this way, so that the GDAL writes and the
    encoding overlap the model. At most ``max_pending`` items are queued or running at once —
    :meth:`submit` waits for the oldest beyond that — so memory stays bounded.

    Errors: the first exception ``fn`` raises is re-raised in the caller at the next
    :meth:`submit` or at :meth:`close`; items queued after a failure are skipped. Used as a
    context manager, :meth:`close` runs on success; on an exception in the caller (including
    KeyboardInterrupt) queued items are cancelled and the running one is waited for, so nothing
    is written after the caller has cleaned up.

    With one CPU or ``max_pending=0``, ``fn`` runs on the calling thread.
    """

    def __init__(self, fn: Callable[[object], None], *, max_pending: int = 2, name: str = "geodefect-worker") -> None:
        from collections import deque

        self._fn = fn
        self.max_pending = max(0, int(max_pending))
        self.threaded = self.max_pending > 0 and (os.cpu_count() or 1) >= 2
        self._pending: deque = deque()
        self._failed = threading.Event()
        self._pool = None
        if self.threaded:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, item) -> None:
        """Queue ``item`` (or process it now when not threaded); re-raises an earlier item's error."""
        if self._pool is None:
            self._fn(item)
            return
        while self._pending and (len(self._pending) >= self.max_pending or self._pending[0].done()):
            self._pending.popleft().result()  # raises the worker's exception here
        self._pending.append(self._pool.submit(self._run, item))

    def _run(self, item) -> None:
        if self._failed.is_set():  # an earlier item failed: its error is what the caller sees
            return
        try:
            self._fn(item)
        except BaseException:
            self._failed.set()
            raise

    def close(self) -> None:
        """Wait for every queued item; re-raise the first error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self.abort()

    def abort(self) -> None:
        """Cancel queued items and wait for the running one (no error is raised)."""
        self._failed.set()
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> OrderedWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
