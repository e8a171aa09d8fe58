"""
Tiling a scene into chips, and keeping the windows inside an AOI
================================================================

`geodefect chip` and `geodefect infer` share one window grid: windows of ``size_px`` every
``stride_px``, with the last row and column snapped to the raster's edge so that no pixel is
left out and no window leaves the raster. This example draws the grid over a small synthetic
scene and highlights the windows that touch the AOI polygon.

Run: ``python examples/plot_tiling_grid.py`` (writes ``tiling_grid.png``).
"""

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import rasterio
from shapely.geometry import box

from geodefect.io.vector import read_aoi
from geodefect.testing.scenes import make_road_scene
from geodefect.windows import filter_windows_by_geometry, iter_windows, window_slices

out_dir = Path(os.environ.get("GEODEFECT_EXAMPLES_OUT", "."))
scene = make_road_scene(tempfile.mkdtemp(), size_px=640, seed=3)

with rasterio.open(scene.image) as src:
    image = src.read()  # (C, H, W) uint8
    transform, crs = src.transform, src.crs

windows = list(iter_windows(image.shape[1], image.shape[2], size_px=128, stride_px=96))

# An AOI drawn in another CRS: a 50 m circle around the scene centre, saved in EPSG:4326.
centre = gpd.GeoSeries([box(*src.bounds).centroid], crs=crs).buffer(50.0).to_crs("EPSG:4326")
aoi_path = Path(tempfile.mkdtemp()) / "aoi.geojson"
gpd.GeoDataFrame(geometry=centre).to_file(aoi_path)
aoi = read_aoi(aoi_path, to_crs=crs)  # reprojected to the raster's CRS
inside = filter_windows_by_geometry(windows, transform, aoi)

# Every pixel is covered at least once: count the windows over each pixel.
coverage = np.zeros(image.shape[1:], np.int32)
for w in windows:
    rows, cols = window_slices(w)
    coverage[rows, cols] += 1
print(f"{len(windows)} windows, {len(inside)} touch the AOI; coverage min {coverage.min()} max {coverage.max()}")

fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(np.moveaxis(image, 0, -1))
for w in windows:
    colour = "yellow" if w in inside else "white"
    ax.add_patch(plt.Rectangle((w.col_off, w.row_off), w.width, w.height, fill=False, ec=colour, lw=1))
ax.set_title("128 px windows every 96 px; yellow = touching the AOI")
ax.set_axis_off()
fig.savefig(out_dir / "tiling_grid.png", dpi=80, bbox_inches="tight")
