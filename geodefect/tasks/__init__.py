"""The task registry: the ONE place a task name means something.

``TASKS`` maps a name to a configured :class:`~geodefect.tasks.base.Task` instance (one class
per kind of problem). A chip folder's ``meta.json`` and a model package's recipe carry the name;
the verbs look the task up here (:func:`get_task`, :func:`task_for_data`, :func:`task_for_recipe`)
and call its hooks. A new segmentation task (potholes) is one :func:`register_task` line:

    register_task(SegmentTask("pothole_segment", default_model="crack_deeplabv3plus", defect_class="pothole"))

Modules outside ``geodefect/tasks/`` never compare task names (a test checks).
"""

from __future__ import annotations

from pathlib import Path

from geodefect.errors import InputError
from geodefect.tasks.base import NoOptions, Task, TaskData
from geodefect.tasks.damage import DamageTask
from geodefect.tasks.inspection import ClassifyTask, SegmentTask
from geodefect.tasks.panorama import PanoramaTask
from geodefect.tasks.roads import RoadTask

__all__ = ["TASKS", "NoOptions", "Task", "TaskData", "get_task", "register_task", "task_for_data",
           "task_for_recipe", "chip_task_for", "lodo_task", "unregister_task"]

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` under ``task.name`` (an existing name is an error)."""
    if not task.name or task.name in TASKS:
        raise ValueError(f"task name {task.name!r} is empty or already registered")
    TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    TASKS.pop(name, None)


register_task(RoadTask())
register_task(ClassifyTask(
    "crack_classify", description="crack / no crack per photo or window (stage 1, DenseNet-169)",
    default_model="crack_densenet169", defect_class="crack",
    loop_defaults={"lr": 1e-3, "lr_schedule": "step", "weight_decay": 1e-4},
    option_defaults={"loss": "ce", "defect_oversample": 0.5}))
register_task(SegmentTask(
    "crack_segment", description="crack masks in tunnel-lining / pavement photos (stage 2, DeepLabV3+)",
    default_model="crack_deeplabv3plus", defect_class="crack",
    loop_defaults={"lr": 1e-3, "lr_schedule": "onecycle", "weight_decay": 1e-4}, option_defaults={"loss": "dice"}))
# rail: the paper trains plain VGG19 from ImageNet weights with CE at a constant 1e-4; without pretrained
# weights that recipe stays at "all background" on a CPU budget (DESIGN.md section 13). The paper's recipe:
# `--lr 1e-4 --lr-schedule constant --loss ce --defect-oversample 0` + `batch_norm: false`.
register_task(SegmentTask(
    "rail_segment", description="railhead surface defects on line-scan strips (slim VGG19 FCN)",
    default_model="rail_vgg_fcn", layout="strips", default_size_px=None, defect_class="defect",
    loop_defaults={"lr": 1e-3, "lr_schedule": "onecycle", "weight_decay": 0.0},
    option_defaults={"loss": "ce_dice", "batch_norm": True, "defect_oversample": 0.5},
    fold_keys=("iou", "f1", "precision", "recall", "miou", "box_recall", "box_precision")))
register_task(DamageTask())
register_task(PanoramaTask())


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def task_for_recipe(recipe: dict) -> Task:
    """The task of a model package (its recipe's ``task``)."""
    return get_task(str(recipe.get("task")))


def task_for_data(data_dir: str | Path) -> Task:
    """The task whose training data ``data_dir`` is: its ``meta.json``, or a raw layout a task recognises.

    Raises:
        InputError: naming what was looked for and how to make a chip folder.
    """
    from geodefect.chips.meta import read_chip_meta

    d = Path(data_dir)
    for task in TASKS.values():
        if task.owns_data(d):
            return task
    meta = read_chip_meta(d)  # raises the missing-folder / no-meta.json errors
    return get_task(str(meta.get("task")))


def lodo_task() -> Task:
    """The task ``geodefect evaluate --leave-one-domain-out`` trains (domain-generalised classification)."""
    return get_task(DamageTask.name)


def chip_task_for(*, task: str | None = None, dataset: str | None = None, masks: bool = False,
                  coco: bool = False) -> Task:
    """The task ``geodefect chip`` works for: ``--task``, else the catalog dataset's, else from the labels
    given: image folders with ``--coco`` boxes -> ``rail_segment``, with ``--masks`` -> ``crack_segment``,
    centerlines -> ``roads``."""
    if task is None and dataset:
        from geodefect.catalog import get_dataset

        task = get_dataset(dataset.split(",")[0].strip()).task  # several datasets: a,b,c (one task)
    if task is None:
        task = "rail_segment" if coco else "crack_segment" if masks else "roads"
    chosen = get_task(task)
    if (masks or coco) and chosen.chip_kind != "images":
        images = sorted(n for n, t in TASKS.items() if t.chip_kind == "images")
        raise InputError(f"--masks/--coco label image folders for the tasks {', '.join(images)}; task {task!r} "
                         "takes other inputs")
    return chosen
