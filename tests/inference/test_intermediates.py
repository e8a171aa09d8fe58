"""The tiled intermediates: uncompressed and sparse for rasters up to UNCOMPRESSED_MAX_PX, ZSTD
above; the COGs are the same either way, and tiles no block writes read back as nodata."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from road_infer_helpers import write_aoi

from geodefect.inference import geo
from geodefect.inference import roads as road_infer
from geodefect.models.checkpoint import read_recipe
from geodefect.testing.tiny import make_tiny_scene

OUTPUTS = ("road_prob.tif", "road_mask.tif", "orientation.tif")
PUBLISH = geo.TiledOutputs.publish


@pytest.fixture(scope="module")
def corner(tmp_path_factory):
    """A raster of 2×2 intermediate tiles (512 px) with an AOI inside the top-left one only."""
    scene = make_tiny_scene(tmp_path_factory.mktemp("corner"), height_px=700, width_px=640,
                            road_rows=(60, 300), road_cols=(110,))
    with rasterio.open(scene.image) as ds:
        b = ds.bounds
    aoi = write_aoi(scene.image.with_name("aoi.geojson"), (b.left + 5, b.top - 200, b.left + 200, b.top - 5))
    return scene.image, aoi


def _run(model, image, aoi, out, monkeypatch, *, max_px):
    monkeypatch.setattr(geo, "UNCOMPRESSED_MAX_PX", max_px)
    opened = []

    def spy(self, out_dir, **kwargs):  # the intermediates as written, before the COG copies
        self.close()
        for path in sorted(self.work_dir.glob("tiled-*.tif")):
            with rasterio.open(path) as ds:
                opened.append(ds.compression.name if ds.compression else None)
        return PUBLISH(self, out_dir, **kwargs)

    monkeypatch.setattr(geo.TiledOutputs, "publish", spy)
    road_infer.infer(model, [image], out, recipe=read_recipe(model),
                     overrides={"batch_size": 2, "aoi": str(aoi), "vectorize": False})
    return opened


def test_uncompressed_and_compressed_intermediates_give_the_same_cogs(road_model, corner, tmp_path, monkeypatch):
    image, aoi = corner
    plain = _run(road_model, image, aoi, tmp_path / "plain", monkeypatch, max_px=10**9)
    packed = _run(road_model, image, aoi, tmp_path / "packed", monkeypatch, max_px=0)
    assert plain == [None] * 3 and len(packed) == 3 and None not in packed
    for name in OUTPUTS:
        with rasterio.open(tmp_path / "plain" / name) as a, rasterio.open(tmp_path / "packed" / name) as b:
            pa, pb = a.read(1), b.read(1)
            np.testing.assert_array_equal(pa, pb)
            assert a.overviews(1) == b.overviews(1) and len(a.overviews(1)) >= 1
            np.testing.assert_array_equal(a.read(1, out_shape=(175, 160)), b.read(1, out_shape=(175, 160)))
    with rasterio.open(tmp_path / "plain" / "road_mask.tif") as ds:
        mask = ds.read(1)
    # tiles the AOI does not touch were never written: nodata, not 0
    assert (mask[512:, :] == 255).all() and (mask[:, 512:] == 255).all()
    assert (mask[60, 20:380] == 1).all()
    assert (mask[480:512, :] == 255).all() and (mask[:, 480:512] == 255).all()  # written tiles' unwritten part
