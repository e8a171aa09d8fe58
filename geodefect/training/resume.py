"""One policy for run folders and resuming, the same for every task.

* A new run refuses a non-empty RUN_DIR unless ``--overwrite`` (and then only a folder that
  ``geodefect train`` wrote: other files are never deleted).
* ``--resume`` needs the run's ``config.yaml`` and ``last.pt``; options that change the result
  are refused (:func:`geodefect.training.config.resolve_train_config` with ``saved``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from geodefect.errors import InputError, OutputExistsError

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


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Create RUN_DIR; refuse to replace a run without --overwrite, or a folder of other files."""
    if resume:
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"run folder {str(run_dir)!r} already exists; pass --overwrite to replace it "
                                    "or --resume to continue it")
        foreign = [p.name for p in run_dir.iterdir() if not _ours(p)]
        if foreign:
            raise OutputExistsError(f"run folder {str(run_dir)!r} holds files geodefect train did not write "
                                    f"({', '.join(sorted(foreign)[:3])}); choose another RUN_DIR")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _ours(path: Path) -> bool:
    return path.name in RUN_FILES or path.name.startswith((".tmp-", "fold_"))
