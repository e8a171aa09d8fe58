"""Tiny hand-made GeoTIFFs and centerlines for unit tests (torchgeo-style: a few hundred px).

Unlike :mod:`geodefect.testing.scenes` (realistic scenes for the demo), these are built so
that a test can compute the expected answer: straight roads at known pixel rows/columns,
drawn dark on noise, with centerlines written in EPSG:4326 so that reprojection is exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: UTM 31N near Paris
TINY_CRS = "EPSG:32631"
TINY_ORIGIN = (448_000.0, 5_412_000.0)


@dataclass(frozen=True)
class TinyScene:
    image: Path
    centerlines: Path
    road_rows: tuple[int, ...]
    road_cols: tuple[int, ...]
    pixel_size_m: float
    transform: object


def write_tiny_geotiff(path, array: np.ndarray, *, pixel_size_m: float = 0.5, crs=TINY_CRS,
                       origin=TINY_ORIGIN, nodata=None, **creation):
    """Write ``(C, H, W)`` as a north-up GeoTIFF at ``origin``; returns its transform."""
    import rasterio
    from rasterio.transform import from_origin

    transform = from_origin(origin[0], origin[1], pixel_size_m, pixel_size_m)
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1],
                       count=array.shape[0], dtype=array.dtype, crs=crs, transform=transform,
                       nodata=nodata, **creation) as dst:
        dst.write(array)
    return transform


def write_lines(path, lines, *, crs=TINY_CRS, to_crs="EPSG:4326") -> Path:
    """Write shapely lines (in ``crs``) as GeoJSON in ``to_crs``."""
    import geopandas as gpd

    gdf = gpd.GeoDataFrame({"id": list(range(len(lines)))}, geometry=list(lines), crs=crs)
    if to_crs is not None:
        gdf = gdf.to_crs(to_crs)
    gdf.to_file(path, driver="GeoJSON")
    return Path(path)


def make_tiny_scene(out_dir, *, height_px: int = 200, width_px: int = 260, pixel_size_m: float = 0.5,
                    road_rows=(60,), road_cols=(150,), bands: int = 3, dtype="uint8",
                    seed: int = 0) -> TinyScene:
    """A noisy raster with dark horizontal roads at ``road_rows`` and vertical ones at ``road_cols``.

    Horizontal lines run west -> east (orientation bin 1), vertical ones north -> south
    (θ = 270°). Values: uint8 noise 120..200, roads 30; ``dtype="uint16"`` scales by 40.
    """
    from shapely.geometry import LineString

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = rng.integers(120, 200, size=(bands, height_px, width_px)).astype(np.float64)
    for r in road_rows:
        img[:, max(r - 3, 0):r + 3, :] = 30
    for c in road_cols:
        img[:, :, max(c - 3, 0):c + 3] = 30
    scale = 40 if dtype == "uint16" else 1
    transform = write_tiny_geotiff(out / "tiny.tif", (img * scale).astype(dtype), pixel_size_m=pixel_size_m)
    lines = []
    for r in road_rows:  # along pixel-centre row r: y of the centre of row r
        x0, y = transform @ (0, r + 0.5)
        x1, _ = transform @ (width_px, r + 0.5)
        lines.append(LineString([(x0, y), (x1, y)]))
    for c in road_cols:
        x, y0 = transform @ (c + 0.5, 0)
        _, y1 = transform @ (c + 0.5, height_px)
        lines.append(LineString([(x, y0), (x, y1)]))
    path = write_lines(out / "tiny_roads.geojson", lines)
    return TinyScene(out / "tiny.tif", path, tuple(road_rows), tuple(road_cols), pixel_size_m, transform)
