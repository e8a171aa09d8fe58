"""geodefect.distributed: the LocalCluster workers get the allocator settings of the CLI process."""

from __future__ import annotations

import os
import platform
import sys

import pytest

from geodefect.distributed import gpu_for_worker, open_client, parse_scheduler, worker_env


def _worker_allocator() -> tuple[str | None, bool]:
    from geodefect.alloc import tune_malloc
    from geodefect.distributed import _nanny_env

    return os.environ.get("MALLOC_ARENA_MAX"), tune_malloc(_nanny_env())


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_local_cluster_worker_is_tuned_despite_the_nannys_trim_threshold(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with open_client(parse_scheduler("processes:1")) as client:
        (arena, tuned), = client.run(_worker_allocator).values()
    assert arena == "1" and tuned is True  # without the fix: Dask's 65536 read as the user's choice -> False


def _task_mmapped_bytes(setup: bool = True) -> int:
    """In a worker task (its thread pool): bytes glibc serves from mmap for a 64 MiB array
    (``setup``: the task runs the units' ``worker_setup`` first, else only the cluster's start did)."""
    import ctypes

    import numpy as np

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    from geodefect.distributed import worker_setup

    if setup:
        worker_setup()
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
    base = mallinfo2().hblkhd
    held = np.ones(64 * 2**20, np.uint8)
    mmapped = mallinfo2().hblkhd - base  # measured while the array is alive
    del held
    return int(mmapped)


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
@pytest.mark.parametrize("setup_in_task", [True, False])
def test_a_worker_task_allocates_from_the_tuned_heap(monkeypatch, setup_in_task):
    """MALLOC_ARENA_MAX must reach the worker before it starts (a Nanny's ``env`` comes too late):
    otherwise the task thread has its own arena and mmaps big activations afresh (~12 % slower).
    A task that does not set up the worker itself (a chip unit) finds it tuned by the cluster's start
    (``client.run``, where ``get_worker`` finds no worker: the set-up must not take it for ``local``)."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    with open_client(parse_scheduler("processes:1")) as client:
        mmapped = client.submit(_task_mmapped_bytes, setup_in_task, pure=False).result()
    assert mmapped == 0
    assert "MALLOC_ARENA_MAX" not in os.environ  # this process's environment is left as it was


def test_the_users_arena_setting_is_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert "MALLOC_ARENA_MAX" not in worker_env()
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert worker_env()["MALLOC_ARENA_MAX"] == "1"


def test_n_workers_share_the_cpus_and_write_inline(monkeypatch):
    from geodefect.inference.roads import write_behind_blocks
    from geodefect.sliding.threads import usable_cpus

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert worker_env(4)["GEODEFECT_USABLE_CPUS"] == "1" and worker_env(1)["GEODEFECT_USABLE_CPUS"] == "4"
    monkeypatch.setenv("GEODEFECT_USABLE_CPUS", "1")
    assert usable_cpus() == 1
    assert write_behind_blocks("cpu") == 0  # one torch thread on its one core: no writer thread beside it


def test_local_cluster_workers_take_one_gpu_each():
    assert [gpu_for_worker(i, 2) for i in range(4)] == [0, 1, 0, 1]
    assert gpu_for_worker("3", 4) == 3
    assert gpu_for_worker(0, 1) is None  # one visible GPU (dask-cuda's workers, or one GPU): leave it
    assert gpu_for_worker("tcp://10.0.0.5:40000", 4) is None  # a name that is not an index


def _modules_loaded(*names: str) -> list[bool]:
    return [name in sys.modules for name in names]


def test_an_early_cluster_is_taken_over_with_its_workers_warmed(monkeypatch):
    import logging

    from geodefect import distributed

    monkeypatch.setattr(logging.getLogger("distributed"), "level", logging.NOTSET)  # as in a fresh process
    with distributed.early_cluster("processes:1", warm="geodefect.chips.distributed:warm_worker"):
        with open_client(parse_scheduler("processes:1")) as client:
            assert not distributed._EARLY  # claimed: the command runs on the cluster started early
            (loaded,) = client.run(_modules_loaded, "geopandas", "geodefect.chips.export").values()
            assert loaded == [True, True]  # imported before any unit asked for them
    assert logging.getLogger("distributed").level == logging.WARNING  # no Dask INFO lines without -v
    assert client.status == "closed"


def test_an_unclaimed_early_cluster_is_closed_when_the_command_fails():
    from geodefect import distributed
    from geodefect.errors import InputError

    with pytest.raises(InputError), distributed.early_cluster("processes:1"):
        handle = distributed._EARLY[parse_scheduler("processes:1")]
        raise InputError("bad input found after the cluster started")
    assert not distributed._EARLY
    assert handle.result[1].status == "closed" and handle.result[0].status.name == "closed"


@pytest.mark.parametrize("spec", [None, "local", "tcp://127.0.0.1:1", "processes:x"])
def test_nothing_starts_early_for_other_schedulers(spec):
    from geodefect import distributed

    with distributed.early_cluster(spec):
        assert not distributed._EARLY


def _distributed_log_level() -> int:
    import logging

    return logging.getLogger("distributed.worker").getEffectiveLevel()  # the heartbeat error's logger


def test_workers_stay_silent_without_verbose(monkeypatch):
    """Worker logs would print Dask's own shutdown races (an ERROR with a traceback) after a run
    that succeeded: off unless -v; a failing unit still reaches the client as its one line."""
    import logging

    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)
    with open_client(parse_scheduler("processes:1")) as client:
        (level,) = client.run(_distributed_log_level).values()
    assert level == logging.CRITICAL


def _callback_ms(dask_worker=None, dask_scheduler=None) -> dict:
    server = dask_worker or dask_scheduler
    return {name: pc.callback_time for name, pc in server.periodic_callbacks.items()}


def test_a_local_cluster_keeps_its_housekeeping_quiet():
    """No 100 Hz stack sampling in the workers and a 1 s event-loop tick: an idle cluster is not a
    CPU load on a small machine (QUIET_CLUSTER), while a worker's memory monitor keeps watching."""
    with open_client(parse_scheduler("processes:1")) as client:
        (worker,) = client.run(_callback_ms).values()
        scheduler = client.run_on_scheduler(_callback_ms)
    assert "profile" not in worker and worker["tick"] == scheduler["tick"] == 1000
    assert scheduler["monitor"] == 5000 and worker["memory_monitor"] <= 100
