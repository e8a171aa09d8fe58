"""Synthetic georeferenced road scenes: the built-in demo data and the tests' data.

``make_road_scene`` writes, deterministically by seed:

* ``scene.tif``: a 3-band uint8 RGB GeoTIFF (tiled 256x256) in a projected CRS (UTM 31N
  around Paris by default) with square ``pixel_size_m`` pixels, showing a road network
  (see :mod:`geodefect.testing.road_network`) painted by :mod:`geodefect.testing.scene_render`;
* ``centerlines.geojson``: the directed road centerlines in EPSG:4326 (so every consumer
  reprojects) with ``road_id``, ``road_class`` and ``width_m`` attributes;
* ``paris.geojson``: an AOI polygon in EPSG:4326 over roughly 60-80 % of the scene;
* ``road_mask.tif``: the generator's own carriageway mask (uint8 0/1, same grid), for tests.

Small scenes (256-384 px) come from the same generator with the same object sizes in
metres; they just hold fewer roads (always at least the arterial and one crossing road).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: default centre of the scene (Paris, Ile de la Cite), lon/lat
PARIS_LONLAT = (2.3470, 48.8550)
SCENE_FILES = {"image": "scene.tif", "centerlines": "centerlines.geojson", "aoi": "paris.geojson",
               "road_mask": "road_mask.tif"}


@dataclass(frozen=True)
class RoadScene:
    """Paths of a synthetic scene's files, and its grid."""

    image: Path
    centerlines: Path
    aoi: Path
    road_mask: Path
    crs: str
    transform: tuple[float, ...]
    size_px: int
    pixel_size_m: float


def make_road_scene(
    out_dir: str | os.PathLike,
    *,
    size_px: int = 1024,
    pixel_size_m: float = 0.3,
    seed: int = 0,
    crs: str = "EPSG:32631",
    origin_xy: tuple[float, float] | None = None,
    compress: str | None = None,
) -> RoadScene:
    """Generate and write a synthetic road scene.

    Args:
        out_dir: folder to write into (created; existing scene files are replaced).
        size_px: side of the square image in pixels (>= 64). 2048 takes a few seconds.
        pixel_size_m: ground sampling distance in metres.
        seed: random seed; the same arguments give byte-identical rasters.
        crs: the raster's CRS (default UTM 31N). A projected CRS gets square pixels of
            ``pixel_size_m`` (converted to its unit, e.g. feet); a geographic CRS (EPSG:4326,
            like SpaceNet's tiles) gets square pixels in degrees whose *north-south* side is
            ``pixel_size_m`` (east-west they are cos(latitude) shorter on the ground, as in
            SpaceNet), so the scene is drawn on the pixel grid and squeezed east-west.
        origin_xy: world ``(x, y)`` of the top-left corner in ``crs``; default puts the scene
            centre on Paris.
        compress: GeoTIFF compression (e.g. "deflate"); default none (fastest to read).

    Returns:
        A :class:`RoadScene` with the written paths.
    """
    from affine import Affine
    from pyproj import CRS

    from geodefect.errors import InputError
    from geodefect.testing.road_network import make_road_network
    from geodefect.testing.scene_render import Canvas, render_scene

    if int(size_px) != size_px or size_px < 64:
        raise InputError(f"`size_px` must be an integer >= 64, got {size_px!r}")
    if not pixel_size_m > 0:
        raise InputError(f"`pixel_size_m` must be > 0, got {pixel_size_m!r}")
    try:
        crs_obj = CRS.from_user_input(crs)
    except Exception:  # pyproj raises CRSError with a long message
        raise InputError(f"`crs` {crs!r} is not a CRS pyproj knows; e.g. EPSG:32631") from None
    extent_m = size_px * pixel_size_m
    pixel_units = _pixel_size_in_crs_units(crs_obj, pixel_size_m)
    x0, y0 = origin_xy if origin_xy is not None else _paris_origin(crs_obj, size_px * pixel_units)
    transform = Affine(pixel_units, 0.0, float(x0), 0.0, -pixel_units, float(y0))

    rng = np.random.default_rng(seed)
    roads = make_road_network(extent_m, rng)
    image, road_mask = render_scene(roads, Canvas(int(size_px), float(pixel_size_m)), rng)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in SCENE_FILES.items()}
    _write_raster(paths["image"], image, transform, crs_obj, compress=compress, photometric="RGB")
    _write_raster(paths["road_mask"], road_mask[None], transform, crs_obj, compress="deflate")
    _write_centerlines(paths["centerlines"], roads, transform, crs_obj, pixel_size_m)
    _write_aoi(paths["aoi"], extent_m, transform, crs_obj, pixel_size_m, rng)
    return RoadScene(image=paths["image"], centerlines=paths["centerlines"], aoi=paths["aoi"],
                     road_mask=paths["road_mask"], crs=crs_obj.to_string(), transform=tuple(transform)[:6],
                     size_px=int(size_px), pixel_size_m=float(pixel_size_m))


def write_road_scene(out_dir: str | os.PathLike, *, overwrite: bool = False, **kwargs) -> RoadScene:
    """:func:`make_road_scene` that refuses to replace existing scene files unless ``overwrite``.

    Raises:
        OutputExistsError: a scene file exists in ``out_dir`` and ``overwrite`` is False.
    """
    from geodefect.io.atomic import check_output_free

    for name in SCENE_FILES.values():
        check_output_free(Path(out_dir) / name, overwrite=overwrite)
    return make_road_scene(out_dir, **kwargs)


def _pixel_size_in_crs_units(crs, pixel_size_m: float) -> float:
    """Pixel side in the CRS's unit: metres -> feet etc., or degrees of latitude at Paris."""
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    if crs.is_geographic:
        ell = crs.ellipsoid
        e2 = 1 - (ell.semi_minor_metre / ell.semi_major_metre) ** 2
        phi = np.radians(PARIS_LONLAT[1])
        metres_per_radian = ell.semi_major_metre * (1 - e2) / (1 - e2 * np.sin(phi) ** 2) ** 1.5
        return pixel_size_m / (metres_per_radian * unit)
    return pixel_size_m / unit


def _paris_origin(crs, extent: float) -> tuple[float, float]:
    """Top-left corner that centres a square of ``extent`` CRS units on Paris."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*PARIS_LONLAT)
    if crs.is_geographic:
        return round(x - extent / 2, 6), round(y + extent / 2, 6)
    return round(x - extent / 2), round(y + extent / 2)


def _to_world(coords_m: np.ndarray, transform, pixel_size_m: float) -> np.ndarray:
    """Scene metres (x right, y down, on the pixel grid) -> world coordinates of the raster CRS."""
    cols, rows = coords_m[:, 0] / pixel_size_m, coords_m[:, 1] / pixel_size_m
    return np.column_stack([transform.c + cols * transform.a, transform.f + rows * transform.e])


def _write_raster(path: Path, array: np.ndarray, transform, crs, *, compress: str | None, photometric=None) -> None:
    import rasterio

    from geodefect.io.atomic import atomic_path

    count, height, width = array.shape
    profile = {"driver": "GTiff", "height": height, "width": width, "count": count, "dtype": "uint8",
               "crs": crs.to_wkt(), "transform": transform, "tiled": True, "blockxsize": 256, "blockysize": 256}
    if compress:
        profile["compress"] = compress
    if photometric:
        profile["photometric"] = photometric
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array)


def _write_centerlines(path: Path, roads, transform, crs, pixel_size_m: float) -> None:
    import geopandas as gpd
    import shapely

    from geodefect.io.atomic import atomic_path

    lines = [shapely.transform(r.line, lambda xy: _to_world(xy, transform, pixel_size_m)) for r in roads]
    gdf = gpd.GeoDataFrame(
        {"road_id": np.arange(len(roads)), "road_class": [r.road_class for r in roads],
         "width_m": [round(r.width_m, 2) for r in roads]},
        geometry=lines, crs=crs.to_wkt(),
    ).to_crs("EPSG:4326")
    with atomic_path(path) as tmp, _quiet_pyogrio():
        gdf.to_file(tmp, driver="GeoJSON", engine="pyogrio")


def _write_aoi(path: Path, extent_m: float, transform, crs, pixel_size_m: float, rng: np.random.Generator) -> None:
    """An irregular polygon covering roughly 60-80 % of the scene, in EPSG:4326."""
    import geopandas as gpd
    import shapely

    from geodefect.io.atomic import atomic_path

    lo = rng.uniform(0.04, 0.1, 2) * extent_m
    hi = rng.uniform(0.9, 0.96, 2) * extent_m
    cut = rng.uniform(0.15, 0.3) * extent_m
    ring = np.array([[lo[0], lo[1]], [hi[0] - cut, lo[1]], [hi[0], lo[1] + cut], [hi[0], hi[1]], [lo[0], hi[1]]])
    poly = shapely.Polygon(_to_world(ring, transform, pixel_size_m))
    gdf = gpd.GeoDataFrame({"name": ["paris"]}, geometry=[poly], crs=crs.to_wkt()).to_crs("EPSG:4326")
    with atomic_path(path) as tmp, _quiet_pyogrio():
        gdf.to_file(tmp, driver="GeoJSON", engine="pyogrio")


@contextlib.contextmanager
def _quiet_pyogrio():
    """pyogrio logs "Created N records" at INFO for every write; keep stderr for our logs."""
    logger = logging.getLogger("pyogrio._io")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
