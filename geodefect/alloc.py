"""glibc allocator settings for CPU inference and training (Linux; a no-op elsewhere).

On CPU, torch allocates every activation with ``malloc``. glibc serves a request above its
mmap threshold (128 KiB, raised dynamically to at most 32 MiB) with fresh ``mmap`` pages and
gives them back with ``munmap`` on free; the kernel zeroes each page again on first touch. A
forward pass whose activations are tens of MiB (a batch of four 256² windows through a
ResNet LinkNet) therefore page-faults through every one of them, batch after batch (and
the numpy stitching between batches allocates and frees large blocks of its own). PyTorch's
CPU tuning guide recommends swapping in jemalloc or tcmalloc for the same reason; glibc's own
``mallopt`` gets most of the way without a new dependency:

* ``M_MMAP_THRESHOLD`` 256 MiB — blocks up to that size come from the heap and are reused;
* ``M_TRIM_THRESHOLD`` 512 MiB — free memory at the top of the heap is only given back to the
  system above that, so the next batch does not fault it in again.

Measured on this project's 2-core machine (BENCHMARKS.md, "Inference"): the bare forward over
4×256² batches is 15–25 % faster (ResNet-18 LinkNet, 40 windows: 1.55–1.81 s → 1.15–1.18 s;
ResNet-34: 2.1–2.2 s → 1.81 s), and the model no longer runs slower inside ``geodefect infer``
than on its own. The cost is the retained heap: ~100 MB more peak RSS in ``bench_infer``.

The CLI calls :func:`tune_malloc` once at start-up. ``GEODEFECT_MALLOC_TUNE=0`` turns it off; a
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES`` set in the
environment (glibc's own settings) is left alone. With another allocator preloaded (jemalloc,
tcmalloc) the settings reach glibc's malloc, which then serves nothing: harmless.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys

#: mallopt parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 256 * 2**20
TRIM_THRESHOLD_BYTES = 512 * 2**20

_USER_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


@functools.cache
def tune_malloc(launcher_env: tuple[tuple[str, str], ...] = ()) -> bool:
    """Set the glibc thresholds above (once per process). Returns True if they were set.

    Args:
        launcher_env: ``(name, value)`` pairs that a launcher, not the user, put in this process's
            environment (a Dask nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker); an
            allocator variable with exactly that value is not taken as the user's choice.
    """
    if os.environ.get("GEODEFECT_MALLOC_TUNE", "1").strip() in ("0", "false", "no", "off"):
        return False
    if any(os.environ.get(name) and (name, os.environ[name]) not in launcher_env for name in _USER_TUNABLES):
        return False  # the user chose their own allocator settings
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def _glibc(name: str):
    """glibc's function ``name`` (``libc.so.6``), or None off glibc or where this glibc lacks it."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _glibc_mallopt():
    """glibc's ``mallopt(int, int) -> int``, or None off glibc."""
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt


def single_arena() -> bool:
    """Threads created from now on allocate from glibc's main arena (``M_ARENA_MAX`` 1).

    :func:`tune_malloc`'s thresholds only help the main arena: another thread's arena grows in
    mmap'd heaps of at most 64 MiB, so a big activation made outside the main thread (a Dask
    worker runs its tasks in a thread pool) is mmap'd and faulted in afresh, batch after batch:
    the same forward took ~20 % longer in a worker thread than in the main thread. A
    ``MALLOC_ARENA_MAX`` set in the environment is left alone. Returns True if it was set.
    """
    mallopt = None if os.environ.get("MALLOC_ARENA_MAX") else _glibc_mallopt()
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, 1))


@contextlib.contextmanager
def large_blocks_unmapped(threshold_bytes: int = 2**20):
    """Within the block, malloc serves requests above ``threshold_bytes`` with ``mmap`` again.

    For loops over large, short-lived arrays between which small, long-lived objects are made
    (the tiled vectoriser: a block's mask and skeleton, then its graph pieces): with
    :func:`tune_malloc`'s thresholds the arrays come from the heap, and the pieces left above
    them keep the freed pages from going back, so the heap grows block after block. Only acts
    when :func:`tune_malloc` has set its thresholds in this process; restores them on exit.
    """
    tuned = tune_malloc.cache_info().currsize > 0 and tune_malloc()
    if tuned:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, int(threshold_bytes))
    try:
        yield
    finally:
        if tuned:
            ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``; a no-op elsewhere).

    With :func:`tune_malloc`'s trim threshold the heap never shrinks by itself: a loop that frees
    the arrays of one block before making the next (the tiled vectoriser) calls this between blocks.
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _mallinfo2():
    """glibc's ``mallinfo2() -> struct mallinfo2`` (glibc >= 2.33), or None."""
    fn = _glibc("mallinfo2")
    if fn is not None:
        fn.restype = _MallInfo2
    return fn


def free_heap_bytes() -> int | None:
    """Bytes that glibc's arenas hold free (``mallinfo2().fordblks``), or None where unknown."""
    fn = _mallinfo2()
    return None if fn is None else int(fn().fordblks)


def release_free_memory_above(limit_bytes: int = TRIM_THRESHOLD_BYTES) -> bool:
    """:func:`release_free_memory` when the heap holds more than ``limit_bytes`` free; True if it did.

    glibc gives back only the top of the heap by itself (above :func:`tune_malloc`'s 512 MiB): free
    chunks below a live one stay resident. A loop whose large arrays change size or outlive each
    other (the stitcher's strips and held windows between forwards) then grows the heap batch after
    batch. The sliding engine calls this after every batch, so the heap as a whole keeps no more
    free memory than its top may; a forward whose freed activations stay under the limit (the
    shipped road model's batches) keeps reusing its pages, which is :func:`tune_malloc`'s point.
    (Released chunks still count as free, so above the limit every batch releases again: their
    pages are then no longer resident, and the next forward faults in what it reuses; the engine
    therefore calls :func:`release_between_batches`, whose limit covers the forward's own memory.)
    """
    free = free_heap_bytes()
    if free is None or free <= limit_bytes:
        return False
    release_free_memory()
    return True


def resident_bytes() -> int | None:
    """This process's resident memory (``/proc/self/statm``), or None where there is none."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


#: the most resident memory one forward added beyond its outputs, over this process (bytes)
_forward_bytes = [0]


def measure_forward(fn):
    """``fn()`` (a dict of output arrays), noting the resident memory it added beyond its outputs.

    Kept as the most over the process (a model's working set; a second run reuses resident pages
    and would measure less) for :func:`release_between_batches`.
    """
    before = resident_bytes()
    out = fn()
    after = resident_bytes()
    if before is not None and after is not None:
        outputs = sum(int(getattr(v, "nbytes", 0)) for v in out.values())
        _forward_bytes[0] = max(_forward_bytes[0], after - before - outputs)
    return out


def release_between_batches(limit_bytes: int = TRIM_THRESHOLD_BYTES) -> bool:
    """:func:`release_free_memory_above` the limit or twice the forward's working set, the larger.

    A forward frees its activations when it returns and the next forward reuses those chunks; with
    the stitcher's arrays between them the heap holds up to about twice that free after a batch (a
    ResNet-34 LinkNet at 4 x 512²: working set 0.47–0.58 GB, free 0.6–1.0 GB). Giving those back
    after every batch made each forward fault every page in again (+13 % end to end under torch) for
    no lower peak (the forward is the peak). A model whose forward adds little (the shipped road
    model, ONNX Runtime's own arena, the memory benchmark's 1x1 convolution: 0.17–0.23 GB) keeps the
    plain limit, and the heap's creep stays bounded (BENCHMARKS.md, "Dask … memory").
    """
    return release_free_memory_above(max(limit_bytes, 2 * _forward_bytes[0]))
