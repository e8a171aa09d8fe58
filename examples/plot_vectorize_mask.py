"""
From a road mask to a road graph
================================

`geodefect.graph` turns any road probability raster into a clean network: threshold,
skeletonise, build a graph with nodes at junctions and ends, prune spurs, bridge gaps,
simplify in metres. It takes an array and an affine transform, so it works on probability
maps made by any model. Here the input is the synthetic scene's true road mask.

Run: ``python examples/plot_vectorize_mask.py`` (writes ``vectorize_mask.png``).
"""

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import rasterio

from geodefect.graph.vectorize import VectorizeParams, vectorize_road_mask
from geodefect.io.vector import read_lines
from geodefect.testing.scenes import make_road_scene

out_dir = Path(os.environ.get("GEODEFECT_EXAMPLES_OUT", "."))
scene = make_road_scene(tempfile.mkdtemp(), size_px=512, seed=5)

with rasterio.open(scene.road_mask) as src:
    mask = src.read(1) > 0  # (H, W) bool
    transform, crs = src.transform, src.crs

network = vectorize_road_mask(mask, transform, params=VectorizeParams(min_spur_m=10.0), crs=crs)
roads, nodes = network.to_geodataframes()
truth = read_lines(scene.centerlines, to_crs=crs)
truth_km = truth.length.sum() / 1000
print(f"{network.n_edges} road edges, {network.n_nodes} nodes, {network.total_length_m / 1000:.2f} km "
      f"(truth {truth_km:.2f} km)")

fig, ax = plt.subplots(figsize=(6, 6))
left, bottom, right, top = rasterio.transform.array_bounds(*mask.shape, transform)
ax.imshow(mask, cmap="gray", extent=(left, right, bottom, top))
roads.plot(ax=ax, color="orange", linewidth=2)
nodes.plot(ax=ax, color="red", markersize=12)
ax.set_title("skeleton graph (orange) and its nodes (red)")
ax.set_axis_off()
fig.savefig(out_dir / "vectorize_mask.png", dpi=80, bbox_inches="tight")
