"""``geodefect explain``: Score-CAM heatmaps of a model for one image (the task decides what applies)."""

from __future__ import annotations

from geodefect.summary import Summary


def explain(model, image, out_dir, *, layer: str, target: int = 1, max_maps: int = 128, threads: int = 0,
            overwrite: bool = False) -> Summary:
    from geodefect._torch import set_threads
    from geodefect.models.checkpoint import read_recipe
    from geodefect.tasks import task_for_recipe

    recipe = read_recipe(model)
    set_threads(threads)
    return task_for_recipe(recipe).explain(model, image, out_dir, recipe=recipe, layer=layer, target=target,
                                           max_maps=max_maps, overwrite=overwrite)
