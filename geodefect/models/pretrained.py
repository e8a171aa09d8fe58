"""Pretrained model packages shipped with geodefect, by name, and starting a run from a package.

* :func:`resolve_model` turns ``MODEL`` of ``geodefect infer`` (and ``--init-from`` of
  ``geodefect train``) into a file: an existing path is used as is, otherwise a name from
  :data:`PRETRAINED` (e.g. ``spacenet3-roads``) resolves to the package data in
  ``geodefect/pretrained/`` (each with a model card ``MODEL_CARD.md`` beside it).
* :func:`init_from_package` copies a package's weights into a freshly built model after
  checking that task, bands and architecture match (one-line error otherwise).
"""

from __future__ import annotations

from pathlib import Path

from geodefect.errors import InputError, InputFileNotFoundError

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
#: name -> file in PRETRAINED_DIR
PRETRAINED = {"spacenet3-roads": "spacenet3-roads.pt"}
MODEL_CARD = "MODEL_CARD.md"


def resolve_model(spec: str | Path) -> Path:
    """The package file of ``spec``: an existing path, or the file of a pretrained name.

    Raises:
        InputFileNotFoundError: neither a file nor a known name (the message lists the names).
    """
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec)
    if name in PRETRAINED:
        shipped = PRETRAINED_DIR / PRETRAINED[name]
        if not shipped.is_file():
            raise InputFileNotFoundError(f"pretrained model {name!r} is missing from the installation ({str(shipped)!r}); "
                                         "reinstall geodefect")
        return shipped
    raise InputFileNotFoundError(f"model file {name!r} does not exist and is not a pretrained model name; "
                                 f"pass a package from `geodefect train` or one of: {', '.join(sorted(PRETRAINED))}")


def model_card(spec: str | Path) -> str:
    """The text of a pretrained package's model card (``MODEL_CARD.md`` beside it)."""
    card = resolve_model(spec).parent / MODEL_CARD
    if not card.is_file():
        raise InputFileNotFoundError(f"no model card {str(card)!r} beside model {str(spec)!r}")
    return card.read_text()


def check_init_package(spec: str | Path, *, task: str, recipe: dict) -> Path:
    """Check that package ``spec`` can start a run whose recipe is ``recipe``; returns its path.

    Checks, each with a one-line error naming both sides: the same task, the same input
    bands (and pan-sharpening), the same architecture (model name and kwargs).
    """
    from geodefect.models.checkpoint import read_recipe

    path = resolve_model(spec)
    src = read_recipe(path)
    what = f"--init-from {str(spec)!r}"
    if src.get("task") != task:
        raise InputError(f"{what} is a {src.get('task')!r} model; this run trains a {task!r} model: "
                         f"start from a {task!r} package")
    for key in ("bands", "pan_sharpen"):
        if key in recipe and src.get(key) != recipe.get(key):
            raise InputError(f"{what} was trained on {key} {src.get(key)!r}, these chips have {recipe.get(key)!r}; "
                             "chip the same bands as the package (see its recipe) or train from scratch")
    if src.get("model") != recipe.get("model"):
        raise InputError(f"{what} is model {_spec_text(src.get('model'))}, this run builds {_spec_text(recipe.get('model'))}; "
                         "pass the package's --model/--encoder (or the same chip orientation bins)")
    return path


def init_from_package(model, spec: str | Path, *, task: str, recipe: dict) -> Path:
    """Check package ``spec`` (:func:`check_init_package`) and load its weights into ``model``."""
    from geodefect.models.checkpoint import _read

    path = check_init_package(spec, task=task, recipe=recipe)
    model.load_state_dict(_read(path)["state_dict"])
    return path


def _spec_text(spec) -> str:
    spec = spec or {}
    kwargs = ", ".join(f"{k}={v}" for k, v in sorted((spec.get("kwargs") or {}).items()))
    return f"{spec.get('name')}({kwargs})"
