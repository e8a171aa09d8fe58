"""Atomic outputs: write under a temporary name, rename when complete.

An interrupted run therefore never leaves a file (or folder) that looks finished. A run
killed with SIGKILL cannot clean up, so temporary names carry the writer's process id
(``.tmp-<name>-<pid>-<random>``) and the next write of the same output removes the
temporaries of its own name whose process is gone (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from geodefect.errors import OutputExistsError

TMP_PREFIX = ".tmp-"


def tmp_sibling(path: str | os.PathLike) -> Path:
    """A unique temporary path in the same folder as ``path`` (same filesystem, so rename is atomic).

    The suffix is kept, so drivers that look at extensions (GDAL, PNG) still work.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(p)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{p.stem}-{os.getpid()}-", suffix=p.suffix, dir=p.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on error remove it.

    Example:
        >>> with atomic_path("out/chip.tif") as tmp:  # doctest: +SKIP
        ...     write_geotiff(tmp, ...)
    """
    final = Path(path)
    tmp = tmp_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a whole output folder under a temporary name and rename it into place.

    Raises:
        OutputExistsError: if ``path`` exists and ``overwrite`` is False (checked before any work).
    """
    final = Path(path)
    check_output_free(final, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final, folder=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-{os.getpid()}-", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; outputs follow the user's umask
    try:
        yield tmp
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def remove_stale_temporaries(path: str | os.PathLike, *, folder: bool = False) -> int:
    """Remove the temporaries of ``path`` left by killed runs; return how many.

    Only names this module makes for ``path`` (``.tmp-<stem>-<pid>-<random><suffix>``, or
    ``.tmp-<name>-<pid>-<random>`` for folders) whose process no longer exists are removed:
    a run still writing the same output on this machine keeps its own.
    """
    p = Path(path)
    stem, suffix = (p.name, "") if folder else (p.stem, p.suffix)
    pattern = re.compile(rf"{re.escape(TMP_PREFIX + stem)}-(\d+)-[A-Za-z0-9_]{{8}}{re.escape(suffix)}")
    n = 0
    if not p.parent.is_dir():
        return 0
    for entry in p.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and not _process_alive(int(match.group(1))):
            _remove(entry)
            n += 1
    return n


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def check_output_free(path: str | os.PathLike, *, overwrite: bool) -> None:
    """Raise OutputExistsError if ``path`` exists (and is non-empty, for folders) unless overwrite."""
    p = Path(path)
    if overwrite or not p.exists():
        return
    if p.is_dir() and not any(p.iterdir()):
        return
    raise OutputExistsError(f"output {str(p)!r} already exists; pass --overwrite to replace it")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
