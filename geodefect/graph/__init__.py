"""Road probability rasters -> clean road graphs (arrays + Affine in, lines out; no file I/O).

skeleton.py (threshold, clean, thin) -> build.py (pixel graph) -> simplify.py (clean-up)
-> network.py (georeferenced networkx graph); vectorize.py composes them. tiled.py does the same
block by block in bounded memory (block_reader.py: window reads; seams.py: the join).
"""

from geodefect.graph.network import RoadNetwork
from geodefect.graph.vectorize import (
    VectorizeParams,
    vectorize_road_mask,
    vectorize_road_probability,
)

__all__ = ["RoadNetwork", "VectorizeParams", "vectorize_road_mask", "vectorize_road_probability"]
