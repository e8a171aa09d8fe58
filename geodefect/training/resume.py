"""One policy for run folders and resuming, the same for every task.

* A new run refuses a RUN_DIR holding a run unless ``--overwrite`` (and then only a folder that
  ``geodefect train`` wrote: other files are never deleted). A folder of ours without
  ``last.pt`` or ``model.pt`` (a start killed before its first epoch ended, or a refused one)
  is treated as empty. The checks are read-only so that every DDP rank makes them before
  joining the process group, and all ranks stop with the same one-line error.
* A run refused or failed before it saved any state removes the folder it created.
* ``--resume`` needs the run's ``config.yaml`` and ``last.pt``; options that change the result
  are refused (:func:`geodefect.training.config.resolve_train_config` with ``saved``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from geodefect.errors import InputError, OutputExistsError

log = logging.getLogger(__name__)

#: files and folders ``geodefect train`` writes into a run folder (k-fold runs add fold_<k>/)
RUN_FILES = {"config.yaml", "model.pt", "best.pt", "last.pt", "metrics.csv", "curves.png", "samples.png",
             "lr_find.png", "summary.json", "cv_report.md", "folds.csv"}


def read_saved_config(run_dir: Path) -> dict[str, Any]:
    """The resumed run's ``config.yaml`` (flat or sectioned); a clear error when it is missing."""
    from geodefect.config import load_yaml

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise InputError(f"cannot resume: {str(saved)!r} does not exist; train without --resume to start a run")
    return load_yaml(saved)


def check_resumable(run_dir: Path, *, nested: bool = False) -> None:
    """``--resume`` needs ``last.pt`` (or, for k-fold runs, a fold folder) in RUN_DIR."""
    if (run_dir / "last.pt").is_file() or (nested and any(run_dir.glob("fold_*/last.pt"))):
        return
    raise InputError(f"cannot resume: {str(run_dir / 'last.pt')!r} does not exist; train without --resume")


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse (read-only, so every DDP rank can call it) a RUN_DIR that this run may not use.

    A new run refuses a folder holding a run unless ``--overwrite``, and always one holding
    files ``geodefect train`` did not write. A folder of ours with neither a resumable state
    (``last.pt``) nor a finished run (``model.pt``) is an abandoned start and counts as empty.
    """
    if resume or not run_dir.exists() or not any(run_dir.iterdir()):
        return
    foreign = [p.name for p in run_dir.iterdir() if not _ours(p)]
    if foreign and (overwrite or not _has_run(run_dir)):
        raise OutputExistsError(f"run folder {str(run_dir)!r} holds files geodefect train did not write "
                                f"({', '.join(sorted(foreign)[:3])}); choose another RUN_DIR")
    if not overwrite and (foreign or _has_run(run_dir)):
        raise OutputExistsError(f"run folder {str(run_dir)!r} already exists; pass --overwrite to replace it "
                                "or --resume to continue it")


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Create RUN_DIR after :func:`check_run_dir`; clears a replaced or abandoned run of ours."""
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume:
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not _has_run(run_dir):
            log.warning("run folder %s holds an unfinished start without last.pt; starting afresh", run_dir)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def has_progress(run_dir: Path) -> bool:
    """Whether RUN_DIR holds something worth keeping: a resumable state or a finished run."""
    return run_dir.is_dir() and _has_run(run_dir)


def _has_run(run_dir: Path) -> bool:
    return any(any(run_dir.glob(pattern)) for pattern in ("last.pt", "model.pt", "fold_*/last.pt", "fold_*/model.pt"))


def _ours(path: Path) -> bool:
    return path.name in RUN_FILES or path.name.startswith((".tmp-", "fold_"))
