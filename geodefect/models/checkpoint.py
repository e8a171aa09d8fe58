"""Model packages: weights plus the recipe needed to use them, in one ``.pt`` file.

Format (a dict saved with ``torch.save`` and read with ``torch.load(weights_only=True)``, so
only tensors and plain Python containers/scalars are allowed inside)::

    {"format": "geodefect-model", "format_version": 1,
     "recipe": {...}, "state_dict": {name: tensor}}

The recipe (smp's ``config.json`` idea, ArcGIS's ``.emd``) holds at least::

    task            "roads" | "crack_classify" | "crack_segment" | "rail_segment" | "damage_classify" | ...
    model           {"name": registry name, "kwargs": {...}}   -> build_model(name, **kwargs)
    bands           source band indexes (1-based) the model expects, in order
    normalization   {"mean": [...], "std": [...]} per band, on the 0..255 scale
    size_px         training chip / input size
    geodefect_version
and task-specific keys (roads: stride_px, pixel_size_m, orientation, label; classifiers:
classes; training config and final metrics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geodefect.errors import InputFileNotFoundError, ModelPackageError

FORMAT = "geodefect-model"
FORMAT_VERSION = 1


def save_package(path: str | Path, *, model, recipe: dict[str, Any]) -> None:
    """Save ``model``'s weights and ``recipe`` atomically to ``path``."""
    import torch

    from geodefect import __version__
    from geodefect.io.atomic import atomic_path

    for key in ("task", "model"):
        if key not in recipe:
            raise ValueError(f"recipe needs a {key!r} entry")
    recipe = {**recipe, "geodefect_version": __version__}
    state = {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "recipe": recipe, "state_dict": state}, tmp)


def _read(path: str | Path) -> dict[str, Any]:
    import torch

    p = Path(path)
    if not p.exists():
        raise InputFileNotFoundError(f"model file {str(p)!r} does not exist; check the path")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — arbitrary bytes make torch's unpickler raise anything (KeyError, ...)
        raise ModelPackageError(
            f"{str(p)!r} is not a readable geodefect model package ({exc.__class__.__name__}); "
            "it may be truncated or not a model: use a file written by `geodefect train`"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelPackageError(
            f"{str(p)!r} is a torch file but not a geodefect model package; use best.pt/model.pt written by `geodefect train`"
        )
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise ModelPackageError(
            f"{str(p)!r} has package format {obj['format_version']}, newer than this geodefect reads "
            f"({FORMAT_VERSION}); upgrade geodefect"
        )
    return obj


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe of a model package (raises ModelPackageError for anything else)."""
    return _read(path)["recipe"]


def load_package(path: str | Path, *, device: str = "cpu"):
    """Rebuild the model from its recipe and load the weights.

    Returns:
        ``(model, recipe)``; the model is in eval mode on ``device``.
    """
    from geodefect.models.registry import build_model

    obj = _read(path)
    recipe = obj["recipe"]
    spec = recipe.get("model") or {}
    model = build_model(spec.get("name", "?"), **(spec.get("kwargs") or {}))
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ModelPackageError(
            f"weights in {str(path)!r} do not fit model {spec.get('name')!r} ({str(exc).splitlines()[0]}); "
            "the package is inconsistent: retrain or use another file"
        ) from None
    return model.to(device).eval(), recipe


def _unwrap(model):
    """The bare module under DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
