"""``geodefect infer``: a model package over inputs; the task comes from the package's recipe."""

from __future__ import annotations

from geodefect.summary import Summary


def infer(model, inputs, out_dir, *, config_file=None, overrides: dict | None = None,
          overwrite: bool = False) -> Summary:
    """Run MODEL over ``inputs`` into ``out_dir`` with its task's inference.

    ``model``: a package path or a pretrained name (``spacenet3-roads``). ``threads`` (CPU threads
    for torch) and ``pan_sharpen`` (the MUL raster of one PAN image) apply to every task; the other
    options are the task's
    (each task rejects the ones it does not know, listing the valid ones).
    """
    from geodefect.distributed import early_cluster

    # --scheduler processes:N: the workers start (and import torch) while this process does
    with early_cluster((overrides or {}).get("scheduler"), warm="geodefect.inference.roads_dask:warm_worker"):
        return _infer(model, inputs, out_dir, config_file=config_file, overrides=overrides, overwrite=overwrite)


def _infer(model, inputs, out_dir, *, config_file, overrides: dict | None, overwrite: bool) -> Summary:
    from geodefect._torch import set_threads
    from geodefect.inference.backends import read_model_recipe
    from geodefect.models.pretrained import resolve_model
    from geodefect.tasks import task_for_recipe

    model = resolve_model(model)  # a path, or the name of a model shipped with geodefect
    recipe = read_model_recipe(model)  # a .pt package or a geodefect .onnx export
    task = task_for_recipe(recipe)
    overrides = dict(overrides or {})
    set_threads(overrides.get("threads"))  # torch; the tasks' configs pass it on to other backends
    mul = overrides.pop("pan_sharpen", None)
    if mul:  # a PAN image + its multispectral pair, pan-sharpened on the fly by GDAL
        from geodefect.io.pansharpen import pan_sharpen_inputs

        inputs = pan_sharpen_inputs(inputs, mul, (recipe.get("pan_sharpen") or {}).get("mul_bands"))
    return task.infer(model, list(inputs), out_dir, recipe=recipe, config_file=config_file, overrides=overrides,
                      overwrite=overwrite)
