"""Road inference sums the orientation bins on road pixels only: the same files as summing them
everywhere, with a smaller memory budget too (several strips)."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import rasterio

import geodefect.sliding as sliding
from geodefect.inference import roads as road_infer
from geodefect.models.checkpoint import read_recipe
from geodefect.testing.tiny import make_tiny_scene

OUTPUTS = ("road_prob.tif", "road_mask.tif", "orientation.tif")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_tiny_scene(tmp_path_factory.mktemp("gated"), height_px=300, width_px=260,
                           road_rows=(60, 200), road_cols=(110, 230))


def _run(model, image, out, monkeypatch, *, gated: bool, overrides: dict):
    calls = []
    iter_blocks = sliding.iter_blocks

    def spy(*args, gates=None, on_plan=None, **kwargs):
        def plan_seen(plan):
            calls.append((gates, len(plan.strips)))
            on_plan(plan)

        return iter_blocks(*args, gates=gates if gated else None, on_plan=plan_seen, **kwargs)

    monkeypatch.setattr(sliding, "iter_blocks", spy)
    road_infer.infer(model, [image], out, recipe=read_recipe(model), overrides={"batch_size": 2, **overrides})
    return calls


@pytest.mark.parametrize("overrides", [{}, {"max_memory_mb": 0.6}], ids=["one strip", "strips"])
def test_orientation_on_road_pixels_only_gives_the_same_outputs(road_model, scene, tmp_path, monkeypatch, overrides):
    ((gates, n_strips),) = _run(road_model, scene.image, tmp_path / "gated", monkeypatch, gated=True,
                                overrides=overrides)
    assert set(gates) == {"orientation"} and gates["orientation"].by == "road"
    assert (n_strips > 1) == bool(overrides)
    _run(road_model, scene.image, tmp_path / "dense", monkeypatch, gated=False, overrides=overrides)
    for name in OUTPUTS:
        with rasterio.open(tmp_path / "dense" / name) as a, rasterio.open(tmp_path / "gated" / name) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))
    with rasterio.open(tmp_path / "gated" / "orientation.tif") as ds:
        orient = ds.read(1)
    with rasterio.open(tmp_path / "gated" / "road_mask.tif") as ds:
        road = ds.read(1) == 1
    assert road.sum() > 500 and (orient[road] > 0).all() and (orient[~road & (orient != 255)] == 0).all()
    roads = [pyogrio.read_dataframe(tmp_path / d / "roads.gpkg", layer="roads") for d in ("dense", "gated")]
    assert len(roads[0]) >= 3
    assert list(roads[0].geometry.to_wkb()) == list(roads[1].geometry.to_wkb())
