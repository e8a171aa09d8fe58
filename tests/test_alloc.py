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
    import ctypes, sys
    import numpy as np
    from geodefect.alloc import tune_malloc
    tuned = tune_malloc() if sys.argv[1] == "tune" else False
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
    base = mallinfo2().hblkhd
    a = np.ones(64 * 2**20, np.uint8)
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
