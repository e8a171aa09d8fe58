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
# crack_classify: EfficientNet-Lite0 from offline ImageNet weights beat the paper's DenseNet-169 from scratch on
# CrackForest under the same CPU budget (BENCHMARKS.md "Pretrained encoders"); the paper: `--variant densenet169`.
register_task(ClassifyTask(
    "crack_classify", description="crack / no crack per photo or window (stage 1, EfficientNet-Lite0 ImageNet; "
                                  "paper: --variant densenet169)",
    default_model="crack_densenet169", defect_class="crack",
    loop_defaults={"lr": 1e-3, "lr_schedule": "step", "weight_decay": 1e-4},
    option_defaults={"loss": "ce", "variant": "efficientnet_lite0", "defect_oversample": 0.5}))
# crack_segment: a U-Net (full-resolution decoder: cracks are 2-5 px wide) with the EfficientNet-Lite0 encoder from
# its offline ImageNet weights, 256-px chips, scale augmentation 0.5-2x, 12 epochs: CrackForest validation IoU
# 0.57-0.58 and better than the former DeepLabV3+ / 128-px default on three unseen crack domains (BENCHMARKS.md,
# "Crack segmentation reaching the seed's IoU"); the paper's DeepLabV3+: `--model crack_deeplabv3plus
# --encoder resnet101` (from scratch here).
register_task(SegmentTask(
    "crack_segment", description="crack masks in tunnel-lining / pavement photos (stage 2, U-Net EfficientNet-Lite0 "
                                 "ImageNet; paper: --model crack_deeplabv3plus --encoder resnet101)",
    default_model="crack_unet", defect_class="crack", default_size_px=256, default_keep_empty=0.5,
    loop_defaults={"lr": 1e-3, "lr_schedule": "onecycle", "weight_decay": 1e-4, "epochs": 12},
    option_defaults={"loss": "dice", "encoder": "tu-efficientnet_lite0", "scale_range": 2.0}))
# rail: the paper trains plain VGG19 from ImageNet weights with CE at a constant 1e-4; without pretrained
# weights that recipe stays at "all background" on a CPU budget (DESIGN.md section 13). Default: FPN with the
# offline ImageNet EfficientNet-Lite0 (better box precision and recall on 72 held-out rail400 frames, BENCHMARKS.md);
# the paper's net: `--model rail_vgg_fcn` (+ its recipe: `--no-batch-norm --loss ce --defect-oversample 0
# --lr 1e-4 --lr-schedule constant`).
register_task(SegmentTask(
    "rail_segment", description="railhead surface defects on line-scan strips (FPN + ImageNet EfficientNet-Lite0; "
    "the paper's slim VGG19 FCN: --model rail_vgg_fcn)",
    default_model="defect_fpn", layout="strips", default_size_px=None, defect_class="defect",
    loop_defaults={"lr": 1e-3, "lr_schedule": "onecycle", "weight_decay": 0.0},
    option_defaults={"defect_oversample": 0.5},
    model_option_defaults={
        "rail_vgg_fcn": {"loss": "ce_dice", "batch_norm": True},
        "defect_fpn": {"encoder": "tu-efficientnet_lite0", "encoder_weights": "imagenet", "decoder_channels": 64,
                       "loss": "bce_dice"},
        "crack_deeplabv3plus": {"encoder": "tu-efficientnet_lite0", "encoder_weights": "imagenet",
                                "decoder_channels": 128, "loss": "bce_dice"}},
    fold_keys=("iou", "f1", "precision", "recall", "miou", "box_recall", "box_precision"),
    postprocess_min_box_recall=0.85))
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
