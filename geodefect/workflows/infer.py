"""``geodefect infer``: a model package over inputs; the task comes from the package's recipe."""

from __future__ import annotations

from geodefect.summary import Summary


def infer(model, inputs, out_dir, *, config_file=None, overrides: dict | None = None,
          overwrite: bool = False) -> Summary:
    """Run MODEL over ``inputs`` into ``out_dir`` with its task's inference.

    ``threads`` (CPU threads for torch) applies to every task; the other options are the task's
    (each task rejects the ones it does not know, listing the valid ones).
    """
    from geodefect._torch import set_threads
    from geodefect.models.checkpoint import read_recipe
    from geodefect.tasks import task_for_recipe

    recipe = read_recipe(model)
    task = task_for_recipe(recipe)
    overrides = dict(overrides or {})
    set_threads(overrides.pop("threads", None))
    return task.infer(model, list(inputs), out_dir, recipe=recipe, config_file=config_file, overrides=overrides,
                      overwrite=overwrite)
