"""Road probability rasters -> clean road graphs (arrays + Affine in, lines out; no file I/O).

skeleton.py (threshold, clean, thin) -> build.py (pixel graph) -> simplify.py (clean-up)
-> network.py (georeferenced networkx graph); vectorize.py composes them.
"""

from geodefect.graph.network import RoadNetwork
from geodefect.graph.vectorize import (
    VectorizeParams,
    vectorize_road_mask,
    vectorize_road_probability,
)

__all__ = ["RoadNetwork", "VectorizeParams", "vectorize_road_mask", "vectorize_road_probability"]
