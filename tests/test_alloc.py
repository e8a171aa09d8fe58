"""geodefect.alloc: glibc malloc thresholds for big-tensor work."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from geodefect import alloc

GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"

# hold a 64 MiB array and print how many bytes glibc serves from mmap'd chunks (mallinfo2.hblkhd)
_MMAPPED = textwrap.dedent("""
    import ctypes, sys, threading
    import numpy as np
    from geodefect.alloc import single_arena, tune_malloc
    mode = sys.argv[1]
    if mode == "launcher":  # a Dask nanny's MALLOC_TRIM_THRESHOLD_=65536 is not the user's choice
        tuned = tune_malloc((("MALLOC_TRIM_THRESHOLD_", "65536"),))
    else:
        tuned = tune_malloc() if mode.startswith("tune") else False
    if mode == "tune-one-arena":
        single_arena()
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
    base = mallinfo2().hblkhd
    held = []
    if mode.startswith("tune-") or mode == "plain-thread":  # the array made in another thread (a Dask task)
        t = threading.Thread(target=lambda: held.append(np.ones(64 * 2**20, np.uint8)))
        t.start(); t.join()
    else:
        held.append(np.ones(64 * 2**20, np.uint8))
    print(tuned, mallinfo2().hblkhd - base)
""")


def _mmapped_bytes(mode: str, env: dict | None = None) -> tuple[bool, int]:
    import os

    run_env = {k: v for k, v in os.environ.items() if k not in ("GEODEFECT_MALLOC_TUNE", "MALLOC_MMAP_THRESHOLD_",
                                                               "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    run_env.update(env or {})
    out = subprocess.run([sys.executable, "-c", _MMAPPED, mode], capture_output=True, text=True, env=run_env,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


def _glibc_at_least(major: int, minor: int) -> bool:
    try:
        return GLIBC and tuple(int(x) for x in platform.libc_ver()[1].split(".")[:2]) >= (major, minor)
    except ValueError:
        return False


@pytest.mark.skipif(not _glibc_at_least(2, 33), reason="glibc >= 2.33 (mallinfo2)")
def test_tuned_malloc_serves_big_blocks_from_the_heap():
    tuned, mmapped = _mmapped_bytes("tune")
    assert tuned
    assert mmapped == 0  # a 64 MiB array now comes from the heap (reused after free, no fresh pages)
    untuned, mmapped_plain = _mmapped_bytes("plain")
    assert not untuned
    assert mmapped_plain >= 64 * 2**20  # glibc's default: its own mmap, unmapped again on free


@pytest.mark.skipif(not _glibc_at_least(2, 33), reason="glibc >= 2.33 (mallinfo2)")
def test_a_thread_allocates_from_the_tuned_heap_only_with_one_arena():
    """A Dask task runs in a worker thread: its own arena would mmap the big block afresh each time."""
    assert _mmapped_bytes("tune-thread")[1] >= 64 * 2**20
    assert _mmapped_bytes("tune-one-arena") == (True, 0)


@pytest.mark.skipif(not _glibc_at_least(2, 33), reason="glibc >= 2.33 (mallinfo2)")
def test_a_launchers_own_default_is_not_taken_for_the_users_choice():
    assert _mmapped_bytes("launcher", {"MALLOC_TRIM_THRESHOLD_": "65536"}) == (True, 0)
    assert _mmapped_bytes("launcher", {"MALLOC_TRIM_THRESHOLD_": "1000000"})[0] is False  # the user's value


def test_one_arena_leaves_the_users_setting_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert alloc.single_arena() is False


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_opt_out_and_users_own_tunables_are_respected():
    assert _mmapped_bytes("tune", {"GEODEFECT_MALLOC_TUNE": "0"})[0] is False
    assert _mmapped_bytes("tune", {"MALLOC_TRIM_THRESHOLD_": "1000000"})[0] is False


def test_opt_out_in_process(monkeypatch):
    monkeypatch.setenv("GEODEFECT_MALLOC_TUNE", "off")
    alloc.tune_malloc.cache_clear()
    try:
        assert alloc.tune_malloc() is False
    finally:
        alloc.tune_malloc.cache_clear()


# free 400 MiB of heap chunks that small live objects pin (glibc cannot trim them from the top),
# then ask for a release above LIMIT MiB; print whether it released and the RSS drop in MiB
_PINNED = textwrap.dedent("""
    import os, sys
    import numpy as np
    from geodefect.alloc import free_heap_bytes, release_free_memory_above, tune_malloc
    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert tune_malloc()
    big, pins = [], []
    for _ in range(100):
        big.append(np.ones(4 * 2**20, np.uint8))  # 4 MiB from the heap, pages touched
        pins.append(np.ones(64 * 2**10, np.uint8))  # 64 KiB above it, kept alive
    del big
    free_mib = free_heap_bytes() / 2**20
    before = rss_mib()
    released = release_free_memory_above(int(sys.argv[1]) * 2**20)
    print(released, round(free_mib), round(before - rss_mib()))
""")


def _release_pinned(limit_mib: int) -> tuple[bool, int, int]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("GEODEFECT_MALLOC_TUNE", *alloc._USER_TUNABLES)}
    out = subprocess.run([sys.executable, "-c", _PINNED, str(limit_mib)], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


@pytest.mark.skipif(not _glibc_at_least(2, 33), reason="glibc >= 2.33 (mallinfo2)")
def test_free_heap_above_the_limit_goes_back_to_the_system():
    released, free_mib, dropped_mib = _release_pinned(64)
    assert free_mib >= 390  # the freed arrays sit in the heap under the pins
    assert released and dropped_mib >= 350
    kept, _, unchanged_mib = _release_pinned(1024)  # under the limit: the heap keeps its pages for reuse
    assert not kept and abs(unchanged_mib) < 20


# a "forward" that allocates 400 MiB of activations from the heap (pinned: freed, they stay
# there) and returns 16 MiB of outputs; print what measure_forward kept, in MiB
_FORWARD = textwrap.dedent("""
    import numpy as np
    from geodefect import alloc
    assert alloc.tune_malloc()
    pins = []
    def forward():
        acts = [np.ones(4 * 2**20, np.uint8) for _ in range(100)]
        pins.extend(np.ones(64 * 2**10, np.uint8) for _ in acts)
        return {"out": np.ones(16 * 2**20, np.uint8)}
    kept = [alloc.measure_forward(forward) for _ in range(3)]  # its pages are reused: the most is the first's
    print(round(alloc._forward_bytes[0] / 2**20))
""")


@pytest.mark.skipif(not _glibc_at_least(2, 33), reason="glibc >= 2.33 (mallinfo2)")
def test_the_forwards_freed_activations_are_measured_without_its_outputs():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("GEODEFECT_MALLOC_TUNE", *alloc._USER_TUNABLES)}
    out = subprocess.run([sys.executable, "-c", _FORWARD], capture_output=True, text=True, check=True, env=env)
    assert 390 <= int(out.stdout) <= 430  # 400 MiB of activations (+ pins), not the 16 MiB x 3 of outputs


def test_free_memory_up_to_twice_the_forwards_own_is_kept_between_batches(monkeypatch):
    monkeypatch.setattr(alloc, "_forward_bytes", [300 * 2**20])  # as measure_forward found it
    released = []
    monkeypatch.setattr(alloc, "release_free_memory", lambda: released.append(1))
    monkeypatch.setattr(alloc, "free_heap_bytes", lambda: 590 * 2**20)  # its activations and the stitcher's
    assert alloc.release_between_batches(64 * 2**20) is False and not released
    monkeypatch.setattr(alloc, "free_heap_bytes", lambda: 610 * 2**20)  # the heap grew beyond them
    assert alloc.release_between_batches(64 * 2**20) is True and released == [1]
    monkeypatch.setattr(alloc, "_forward_bytes", [16 * 2**20])  # a small forward: the limit holds
    assert alloc.release_between_batches(64 * 2**20) is True and released == [1, 1]
    monkeypatch.setattr(alloc, "free_heap_bytes", lambda: 60 * 2**20)
    assert alloc.release_between_batches(64 * 2**20) is False and released == [1, 1]


def test_the_release_is_a_no_op_where_glibc_cannot_report(monkeypatch):
    monkeypatch.setattr(alloc, "free_heap_bytes", lambda: None)
    monkeypatch.setattr(alloc, "release_free_memory", lambda: pytest.fail("released without a measure"))
    assert alloc.release_free_memory_above(0) is False
