"""Fixtures of the inference tests (the fixed model lives in road_infer_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # road_infer_helpers.py (pytest --import-mode=importlib)

from road_infer_helpers import build_dark_roads, road_recipe


@pytest.fixture(scope="session")
def road_model(tmp_path_factory) -> Path:
    from geodefect.models.checkpoint import save_package

    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_package(path, model=build_dark_roads(), recipe=road_recipe())
    return path


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    from geodefect.testing.tiny import make_tiny_scene

    return make_tiny_scene(tmp_path_factory.mktemp("scene"), road_rows=(60,), road_cols=(150,))
