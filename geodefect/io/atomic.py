"""Atomic outputs: write under a temporary name, rename when complete.

An interrupted run therefore never leaves a file (or folder) that looks finished.
"""

from __future__ import annotations

import contextlib
import os
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
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{p.stem}-", suffix=p.suffix, dir=p.parent)
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
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; outputs follow the user's umask
    try:
        yield tmp
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


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
