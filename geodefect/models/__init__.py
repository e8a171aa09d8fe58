"""Models: one registry (``build_model``) and one package format (``save_package``/``load_package``)."""

from geodefect.models.checkpoint import load_package, read_recipe, save_package
from geodefect.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "load_package", "read_recipe", "register_model", "save_package"]
