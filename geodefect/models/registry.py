"""The model registry: ``@register_model("name")`` on a builder, ``build_model("name", **kwargs)``.

Builders live in modules listed in ``_MODEL_MODULES``; they are imported on first lookup, so
importing the registry stays cheap. An unknown name lists the valid ones (as smp does).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from geodefect.errors import InputError

_REGISTRY: dict[str, Callable] = {}

#: modules whose import registers models (add yours here)
_MODEL_MODULES: tuple[str, ...] = (
    "geodefect.models.road_linknet",
    "geodefect.models.road_hourglass",
    "geodefect.models.crack",
    "geodefect.models.rail_fcn",
    "geodefect.models.defect_fpn",
    "geodefect.models.crack_unet",
    "geodefect.models.classifiers",
)
_loaded = False


def register_model(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register a builder ``fn(**kwargs) -> torch.nn.Module`` under ``name``."""

    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency inside the module
                raise
    _loaded = True


def available_models() -> list[str]:
    """Sorted names of all registered models."""
    _load_all()
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs):
    """Build a registered model. Raises InputError naming the valid models for an unknown name."""
    _load_all()
    if name not in _REGISTRY:
        raise InputError(f"Unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)
