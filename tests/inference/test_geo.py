"""Geo checks: bands, pixel size, AOI windows and masks; the TTA orientation remap."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_origin
from rasterio.windows import Window
from road_infer_helpers import road_recipe, write_aoi
from shapely.geometry import box

from geodefect.errors import InputError
from geodefect.inference.geo import (
    aoi_mask,
    check_pixel_size,
    open_image_for_model,
    plan_geo_windows,
    read_aoi_in_crs,
    select_bands,
)
from geodefect.inference.roads import orientation_flip_remap
from geodefect.sliding import SlidingParams


def test_select_bands_matches_count_or_asks_for_bands():
    recipe = road_recipe()
    assert select_bands("a.tif", 3, recipe, None) == [1, 2, 3]
    assert select_bands("a.tif", 4, recipe, [3, 2, 1]) == [3, 2, 1]
    with pytest.raises(InputError, match="--bands"):
        select_bands("a.tif", 4, recipe, None)
    with pytest.raises(InputError, match="has 1 data band"):
        select_bands("a.tif", 1, recipe, None)
    assert select_bands("rgba.tif", 4, recipe, None, default=[1, 2, 3]) == [1, 2, 3]  # alpha skipped
    with pytest.raises(InputError, match=r"4 data band\(s\) \(1 alpha\)"):
        select_bands("rgbna.tif", 5, recipe, None, default=[1, 2, 3, 4])
    with pytest.raises(InputError, match="selects 2"):
        select_bands("a.tif", 4, recipe, [1, 2])


def test_pixel_size_within_tolerance_resample_or_error():
    assert check_pixel_size("a.tif", (0.52, 0.52), 0.5, resample=True) is None
    assert check_pixel_size("a.tif", (0.3, 0.3), 0.5, resample=True) == 0.5
    with pytest.raises(InputError, match="gdalwarp"):
        check_pixel_size("a.tif", (0.3, 0.3), 0.5, resample=False)
    with pytest.raises(InputError, match="wrong model"):
        check_pixel_size("a.tif", (10.0, 10.0), 0.5, resample=True)
    assert check_pixel_size("a.tif", (7.0, 7.0), None, resample=True) is None


def test_resampled_reader_is_on_the_model_grid(tiny_scene):
    reader = open_image_for_model(tiny_scene.image, road_recipe(pixel_size_m=1.0))
    try:
        assert reader.shape == (3, 100, 130)
        assert reader.transform.a == pytest.approx(1.0)
    finally:
        reader.close()


def test_aoi_windows_touch_the_aoi_and_bbox_is_clipped(tiny_scene, tmp_path):
    reader = open_image_for_model(tiny_scene.image, road_recipe())
    try:
        left, bottom, right, top = reader.bounds
        aoi_path = write_aoi(tmp_path / "aoi.geojson", (left - 50, top - 20, left + 20, top + 50))
        aoi = read_aoi_in_crs(aoi_path, reader.crs)
        gw = plan_geo_windows(reader, SlidingParams(size_px=64, stride_px=48), aoi=aoi)
        assert gw.windows and all(w.col_off == 0 and w.row_off == 0 for w in gw.windows)
        assert gw.bbox.col_off == 0 and gw.bbox.row_off == 0 and gw.bbox.width <= 42 and gw.bbox.height <= 42
        far = box(left + 1000, bottom, right + 1000, top)
        with pytest.raises(InputError, match="does not overlap"):
            plan_geo_windows(reader, SlidingParams(size_px=64, stride_px=48), aoi=far)
    finally:
        reader.close()


def test_aoi_mask_uses_pixel_centres():
    transform = from_origin(0, 10, 1, 1)
    mask = aoi_mask(box(2, 0, 5, 10), Window(0, 0, 8, 10), transform)
    assert mask[:, 2:5].all() and not mask[:, :2].any() and not mask[:, 5:].any()
    assert aoi_mask(None, Window(0, 0, 3, 2), transform).all()


def test_orientation_remap_is_an_involution_and_maps_angles():
    remap = orientation_flip_remap(19, 20)
    probs = np.zeros((1, 19, 1, 1), np.float32)
    probs[0, 1] = 1.0  # bin 1: θ in [0, 20)
    assert remap(probs, "h")[0, :, 0, 0].argmax() == 9  # 180 - 10 = 170° -> bin 9
    assert remap(probs, "v")[0, :, 0, 0].argmax() == 18  # -10 = 350° -> bin 18
    assert remap(probs, "hv")[0, :, 0, 0].argmax() == 10  # 190° -> bin 10
    rng = np.random.default_rng(0).random((2, 19, 3, 3)).astype(np.float32)
    for flip in ("h", "v", "hv"):
        np.testing.assert_array_equal(remap(remap(rng, flip), flip), rng)
        np.testing.assert_array_equal(remap(rng, flip)[:, 0], rng[:, 0])


def test_default_stride_always_leaves_an_overlap_to_blend():
    from geodefect.inference.roads import RoadInferConfig, sliding_params

    assert sliding_params(RoadInferConfig(), road_recipe()).stride_px == 48  # the package's
    assert sliding_params(RoadInferConfig(), road_recipe(stride_px=64)).stride_px == 48  # no overlap -> 3/4
    assert sliding_params(RoadInferConfig(size_px=128), road_recipe()).stride_px == 96
    assert sliding_params(RoadInferConfig(stride_px=64), road_recipe()).stride_px == 64  # explicit wins


def test_threshold_defaults_to_the_package_road_threshold():
    from geodefect.inference.roads import resolve_infer_config

    assert resolve_infer_config(recipe=road_recipe(road_threshold=0.35))[1].threshold == 0.35
    assert resolve_infer_config({}, {"threshold": 0.6}, recipe=road_recipe(road_threshold=0.35))[1].threshold == 0.6
    assert resolve_infer_config(recipe=road_recipe())[1].threshold == 0.5
