"""Workflows compose the steps (chip, train, infer, evaluate); the CLI calls only these.

Each task has one workflow module. A chip folder's ``meta.json`` and a model package's
recipe carry the task, so ``geodefect train`` and ``geodefect infer`` dispatch without a
task flag the user could get wrong.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

from geodefect.errors import InputError, InputFileNotFoundError

#: task name -> workflow module
TASK_WORKFLOWS: dict[str, str] = {
    "roads": "geodefect.workflows.roads",
    "crack_classify": "geodefect.workflows.inspection",
    "crack_segment": "geodefect.workflows.inspection",
    "rail_segment": "geodefect.workflows.inspection",
    "damage_classify": "geodefect.workflows.damage",
    "panorama_stack": "geodefect.workflows.damage",
}


def workflow_for_task(task: str) -> ModuleType:
    """The workflow module of a task; an unknown task lists the known ones."""
    if task not in TASK_WORKFLOWS:
        raise InputError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASK_WORKFLOWS))}")
    return importlib.import_module(TASK_WORKFLOWS[task])


def read_chip_meta(chips_dir: str | Path) -> dict:
    """Read ``CHIPS_DIR/meta.json`` with clear errors for a missing folder or file."""
    d = Path(chips_dir)
    if not d.is_dir():
        raise InputFileNotFoundError(f"chip folder {str(d)!r} does not exist; run `geodefect chip` first")
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise InputError(
            f"chip folder {str(d)!r} has no meta.json; it was not written by `geodefect chip` "
            "(or chipping was interrupted): rerun `geodefect chip`"
        )
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{str(meta_path)!r} is not valid JSON; rerun `geodefect chip --overwrite`") from None
