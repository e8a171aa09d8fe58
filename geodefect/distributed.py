"""Running work units on a Dask cluster (``--scheduler``), and the state that makes reruns resume.

``--scheduler`` takes:

* ``local`` (default): everything in this process, as without Dask;
* ``processes:N``: a :class:`dask.distributed.LocalCluster` of N worker processes on this
  machine, one thread each (torch gets one thread per worker: N workers fill N cores);
* ``tcp://HOST:PORT`` (or ``tls://``): an existing Dask scheduler, e.g. one started by
  dask-jobqueue (SLURM/PBS), dask-kubernetes or ``dask scheduler`` + ``dask worker`` by hand.

A work unit is a pure function of its inputs with a deterministic key; it writes its own
files under a temporary name and renames them when complete, so a unit whose outputs exist
is skipped on a rerun (resume after any interruption, client or worker), and workers never
write to a shared file. The model is loaded once per worker process (:func:`worker_cache`),
on the worker's GPU when it has one. Units are retried (``retries``) when a worker dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from geodefect.errors import ConfigError, GeodefectError, InputError

log = logging.getLogger(__name__)

#: retries of a unit whose worker died (a unit that raises a GeodefectError fails at once)
RETRIES = 2


@dataclasses.dataclass(frozen=True)
class Scheduler:
    """A parsed ``--scheduler`` value: ``kind`` local | processes | address."""

    kind: str
    workers: int = 1
    address: str = ""

    @property
    def is_local(self) -> bool:
        return self.kind == "local"


def parse_scheduler(spec: str | None) -> Scheduler:
    """``local`` | ``processes:N`` | ``tcp://HOST:PORT``; anything else is a ConfigError naming the forms."""
    spec = (spec or "local").strip()
    if spec == "local":
        return Scheduler("local")
    match = re.fullmatch(r"processes:(\d+)", spec)
    if match and int(match.group(1)) >= 1:
        return Scheduler("processes", workers=int(match.group(1)))
    if re.fullmatch(r"(tcp|tls|inproc)://\S+", spec):
        return Scheduler("address", address=spec)
    raise ConfigError(f"`scheduler` must be local, processes:N (N >= 1) or a Dask scheduler address such as "
                      f"tcp://host:8786, got {spec!r}")


@contextlib.contextmanager
def open_client(scheduler: Scheduler) -> Iterator[Any]:
    """A :class:`dask.distributed.Client` for ``scheduler`` (None for ``local``), closed on exit."""
    if scheduler.is_local:
        yield None
        return
    try:
        from dask.distributed import Client
    except ImportError:  # pragma: no cover - dask is a dependency
        raise ConfigError("`--scheduler` needs dask[distributed]: pip install -c constraints.txt 'dask[distributed]'") from None
    _quiet_dask()
    if scheduler.kind == "processes":
        early = _EARLY.pop(scheduler, None)
        cluster, client = early.claim() if early is not None else _local_cluster(scheduler)
        with cluster, client:
            yield client
        return
    try:
        client = Client(scheduler.address, timeout="10s")
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler.address} ({exc}); start it, or use "
                         "--scheduler processes:N on this machine") from None
    with client:
        yield client


#: a LocalCluster's own housekeeping, less often or off: the event-loop tick check (20 ms), psutil's
#: system monitor (0.5 s) and each worker's statistical profiler (a stack sample every 10 ms, for
#: the dashboard this cluster does not serve). An idle 2-worker cluster burnt 1.0 s of CPU per 10 s
#: on a 2-core machine (client 0.41, workers 0.30 each), 0.26 s with these. The memory monitor that
#: pauses or restarts a worker near its limit keeps its interval.
QUIET_CLUSTER = {"distributed.admin.tick.interval": "1s", "distributed.admin.system-monitor.interval": "5s",
                 "distributed.worker.profile.enabled": False}


def _local_cluster(scheduler: Scheduler) -> tuple[Any, Any]:
    """``(LocalCluster, Client)`` of one-thread worker processes, set up (:func:`_one_thread`)."""
    import dask
    from dask.distributed import Client, LocalCluster

    _quiet_dask()
    env = worker_env(scheduler.workers)
    # glibc reads MALLOC_* when a process starts, and a Nanny sets its ``env`` in the worker only
    # after that (its "pre-spawn" environment is set before): the allocator's go there
    at_spawn = {k: v for k, v in env.items() if k.startswith("MALLOC_")}
    spawn_env = {**(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}), **at_spawn}
    ours = {k: os.environ.get(k) for k in at_spawn}  # the Nanny writes them into this process too
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env, **QUIET_CLUSTER}):
            cluster = LocalCluster(n_workers=scheduler.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR,
                                   env={k: v for k, v in env.items() if k not in at_spawn})
    finally:
        for k, v in ours.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    client = Client(cluster)
    client.run(_one_thread, _worker_log_level())
    return cluster, client


def _worker_log_level() -> int:
    """The workers' ``distributed`` log level: a failing unit reaches the client as its one-line
    error, so worker logs stay off without ``-v`` (a worker's heartbeat racing the cluster's
    shutdown logs an ERROR with a traceback after a run that succeeded)."""
    return logging.WARNING if logging.getLogger().level <= logging.DEBUG else logging.CRITICAL


def _quiet_dask() -> None:
    """Dask's own INFO lines (scheduler, nannies, connections) only with ``-v``."""
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)


class _EarlyCluster:
    """A LocalCluster being started on a background thread, its workers then importing what the
    units need (``warm``: ``module:function`` run once per worker), while this process reads its
    inputs; :func:`open_client` claims it."""

    def __init__(self, scheduler: Scheduler, warm: str | None) -> None:
        self.scheduler, self.warm = scheduler, warm
        self.result: tuple[Any, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, name="geodefect-cluster-start", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        try:
            self.result = cluster, client = _local_cluster(self.scheduler)
            if self.warm:
                # on each worker's event loop and before any unit is sent, not as a task: a task's
                # imports in the executor thread raced the loop unpickling the first unit's arguments
                # (which import geopandas too) and broke the import ("partially initialized module")
                client.run(_warm_worker, self.warm)
        except BaseException as exc:  # noqa: BLE001 - raised in the claiming thread
            self.error = exc

    def claim(self) -> tuple[Any, Any]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    def close(self) -> None:
        self.thread.join()
        if self.result is not None:
            cluster, client = self.result
            client.close()
            cluster.close()


_EARLY: dict[Scheduler, _EarlyCluster] = {}


@contextlib.contextmanager
def early_cluster(spec: str | None, *, warm: str | None = None) -> Iterator[None]:
    """Start ``spec``'s LocalCluster now, in the background (``processes:N`` only; otherwise nothing).

    A command wraps its whole run in this: the cluster comes up and its workers import the
    units' libraries (``warm``) while this process imports its own and checks the inputs,
    instead of one after the other (a few seconds of every run). :func:`open_client` with
    the same scheduler takes it over; if the command fails before that, it is closed here. A
    value that does not parse is left to the command's own check (its one-line error).
    """
    try:
        scheduler = parse_scheduler(spec)
    except ConfigError:
        scheduler = None
    if scheduler is None or scheduler.kind != "processes":
        yield
        return
    handle = _EARLY[scheduler] = _EarlyCluster(scheduler, warm)
    try:
        yield
    finally:
        if _EARLY.get(scheduler) is handle:
            del _EARLY[scheduler]
            handle.close()


def _warm_worker(target: str) -> None:
    """Run ``module:function`` (the units' imports) once in this worker."""
    import importlib

    module, _, function = target.partition(":")
    getattr(importlib.import_module(module), function)()


def _one_thread(log_level: int = logging.WARNING) -> None:
    """Torch in a LocalCluster worker uses one thread (the worker count sets the parallelism);
    the worker's ``distributed`` loggers log at ``log_level``."""
    import torch

    torch.set_num_threads(1)
    logging.getLogger("distributed").setLevel(log_level)
    worker_setup()


def worker_setup() -> None:
    """What the CLI does at start-up, once per worker process: glibc malloc tuned for big tensors
    (the CPU forward is 15-25 % slower without it; :mod:`geodefect.alloc`).

    A Dask nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ``): that is Dask's default, not the user's choice, and
    with it every batch's activations are given back and faulted in again (processes:1 took
    1.5x the time of one local process). Values the user set differently are still respected.
    Tasks run in the worker's thread pool, so all threads share glibc's main arena
    (:func:`geodefect.alloc.single_arena`; for threads made before this call, the worker's
    environment sets it: :func:`worker_env`).
    """
    if _RUNNING_HERE:  # units run in this process (``local``): the CLI set it up
        return
    cache = worker_cache()
    if not cache.get("setup"):
        from geodefect.alloc import single_arena, tune_malloc

        single_arena()
        tune_malloc(_nanny_env())
        _pin_gpu()
        # the client checked every input and said its warnings once; units re-open the inputs
        # (e.g. "resampling on the fly"), which must not print them again per unit; the client's
        # bar counts units, the workers' own bars would interleave on the terminal
        logging.getLogger("geodefect").setLevel(logging.ERROR)
        os.environ["GEODEFECT_NO_PROGRESS"] = "1"
        cache["setup"] = True


def gpu_for_worker(name: Any, n_gpus: int) -> int | None:
    """The GPU a worker named ``name`` uses when it sees ``n_gpus`` > 1 (None: leave it).

    LocalCluster workers are named 0..N-1: worker i takes GPU i mod n_gpus, one worker per GPU
    when N is the GPU count (as dask-cuda's LocalCUDACluster does by giving each worker its own
    ``CUDA_VISIBLE_DEVICES``; such workers see one GPU and are left alone).
    """
    if n_gpus <= 1:
        return None
    try:
        return int(name) % n_gpus
    except (TypeError, ValueError):
        return None


def _pin_gpu() -> None:
    """Make this worker's GPU the current CUDA device (``--device auto|cuda`` then uses it)."""
    import torch

    if not torch.cuda.is_available():
        return
    try:
        from dask.distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return
    gpu = gpu_for_worker(name, torch.cuda.device_count())
    if gpu is not None:
        torch.cuda.set_device(gpu)


def worker_env(n_workers: int = 1) -> dict[str, str]:
    """Environment of a LocalCluster worker: one glibc arena (see :func:`worker_setup`), unless the
    user chose ``MALLOC_ARENA_MAX``; and its share of this machine's CPUs
    (``GEODEFECT_USABLE_CPUS``, read by :func:`geodefect.sliding.threads.usable_cpus`): with N
    workers on N cores a worker writes its blocks inline instead of on a helper thread that would
    take the core of its neighbour. Workers of an existing cluster are started by the user: the
    README says to start them with ``MALLOC_ARENA_MAX=1``."""
    env = {} if os.environ.get("MALLOC_ARENA_MAX") else {"MALLOC_ARENA_MAX": "1"}
    env["GEODEFECT_USABLE_CPUS"] = str(max(1, (os.cpu_count() or 1) // max(1, int(n_workers))))
    return env


def _nanny_env() -> tuple[tuple[str, str], ...]:
    """The allocator variables a Dask nanny injects by default (from Dask's configuration)."""
    try:
        import dask

        environ = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    except ImportError:  # pragma: no cover - dask is a dependency
        return ()
    return tuple(sorted((k, str(v)) for k, v in environ.items() if k.startswith("MALLOC_") and v is not None))


def unit_key(prefix: str, *parts: Any) -> str:
    """A deterministic Dask key from the unit's inputs (same inputs, same key, on any machine)."""
    digest = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{prefix}-{digest}"


def run_units(client, fn: Callable, units: Sequence[tuple[str, tuple]], *, on_done: Callable | None = None) -> list:
    """Run ``fn(*args)`` for each ``(key, args)`` on the cluster (or here when ``client`` is None).

    Results come back in the order of ``units``. A GeodefectError raised by a unit fails the
    job with its one-line message (naming the unit); a unit whose worker died is retried
    :data:`RETRIES` times.
    """
    if client is None:
        from geodefect.alloc import release_free_memory

        global _RUNNING_HERE
        results, _RUNNING_HERE = [], True
        try:
            for _, args in units:
                results.append(fn(*args))
                release_free_memory()  # one unit's heap is the next one's: the peak stays a unit's
                if on_done:
                    on_done()
        finally:
            _RUNNING_HERE = False
            _LOCAL_CACHE.clear()  # models loaded for the units go with the run
        return results
    from dask.distributed import as_completed

    futures = [client.submit(_call_unit, fn, *args, key=key, retries=RETRIES, pure=False) for key, args in units]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a unit's crash becomes one line naming it
                raise InputError(f"work unit {future.key} failed on a worker: {exc.__class__.__name__}: {exc}") from None
            if isinstance(result, UnitFailure):
                raise result.error()
            results[index[future.key]] = result
            if on_done:
                on_done()
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results


@dataclasses.dataclass(frozen=True)
class UnitFailure:
    """A unit's GeodefectError, returned (not raised) by the worker: bad data is not retried, the
    worker logs no traceback, and the client raises the same one-line error."""

    kind: type
    message: str

    def error(self) -> GeodefectError:
        return self.kind(self.message)


def _call_unit(fn: Callable, *args) -> Any:
    """Run a unit on a worker; a GeodefectError comes back as a :class:`UnitFailure`."""
    try:
        return fn(*args)
    except GeodefectError as exc:
        return UnitFailure(type(exc), str(exc))


def worker_cache() -> dict:
    """A dict that lives as long as this worker process (models are loaded into it once).

    Outside a Dask worker (``local``) it is a module-level dict of this process.
    """
    try:
        from dask.distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return _LOCAL_CACHE
    if not hasattr(worker, "_geodefect_cache"):
        worker._geodefect_cache = {}
    return worker._geodefect_cache


_LOCAL_CACHE: dict = {}
#: True while :func:`run_units` runs units in this process (``local``): no worker set-up then
_RUNNING_HERE = False
