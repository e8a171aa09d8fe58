"""``geodefect chip``: training chips for the task the inputs are for (``geodefect.tasks.chip_task_for``)."""

from __future__ import annotations

from pathlib import Path

from geodefect.summary import Summary


def chip(images, out_dir, *, task: str | None = None, dataset: str | None = None, centerlines=None, aoi=None,
         masks=None, coco=None, pan_sharpen=None, config_file=None, overrides: dict | None = None,
         overwrite: bool = False) -> Summary:
    """Cut chips of ``images`` (GeoTIFFs with ``centerlines``, or an image folder with ``masks``/``coco``)."""
    from geodefect.distributed import early_cluster

    overrides = dict(overrides or {})
    with early_cluster(overrides.get("scheduler"), warm="geodefect.chips.distributed:warm_worker"):
        return _chip(images, out_dir, task=task, dataset=dataset, centerlines=centerlines, aoi=aoi, masks=masks,
                     coco=coco, pan_sharpen=pan_sharpen, config_file=config_file, overrides=overrides,
                     overwrite=overwrite)


def _chip(images, out_dir, *, task, dataset, centerlines, aoi, masks, coco, pan_sharpen, config_file, overrides,
          overwrite) -> Summary:
    from geodefect.tasks import chip_task_for

    task = task or overrides.pop("task", None)
    chosen = chip_task_for(task=task, dataset=dataset, masks=bool(masks), coco=bool(coco))
    images = [images] if isinstance(images, str | Path) else list(images or [])
    return chosen.chip(images, out_dir, config_file=config_file, overrides=overrides,
                       overwrite=overwrite, centerlines=centerlines, aoi=aoi, dataset=dataset, masks=masks, coco=coco,
                       **({"pan_sharpen": pan_sharpen} if pan_sharpen else {}))
