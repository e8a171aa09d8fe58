"""A fixed (untrained) road model and a tiny scene for inference tests.

``_test_dark_roads``: road logit = gain · (0.3 − mean normalised intensity), so the tiny
scene's dark roads (30/255) are road and its noise (120..200) is not; orientation logits
favour bin 1 everywhere. Deterministic, no training, a few hundred parameters.
"""

from __future__ import annotations

from pathlib import Path

from geodefect.testing.dark_roads import N_ORIENT, build_dark_roads  # noqa: F401 (re-exported to the tests)


def _register() -> None:
    from geodefect.models.registry import _REGISTRY, register_model

    if "_test_dark_roads" not in _REGISTRY:
        register_model("_test_dark_roads")(build_dark_roads)


_register()


def road_recipe(**extra) -> dict:
    recipe = {
        "task": "roads",
        "model": {"name": "_test_dark_roads", "kwargs": {"in_channels": 3}},
        "bands": [1, 2, 3],
        "normalization": {"mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0]},
        "size_px": 64,
        "stride_px": 48,
        "pixel_size_m": 0.5,
        "orientation": {"bin_deg": 20, "n_classes": N_ORIENT},
    }
    recipe.update(extra)
    return recipe


def write_aoi(path: Path, bounds, *, crs="EPSG:32631", to_crs="EPSG:4326") -> Path:
    """An AOI rectangle (``bounds`` in ``crs``) written as GeoJSON in ``to_crs``."""
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame({"id": [0]}, geometry=[box(*bounds)], crs=crs)
    if to_crs:
        gdf = gdf.to_crs(to_crs)
    gdf.to_file(path, driver="GeoJSON")
    return path
