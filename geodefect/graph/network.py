"""The road network result: a networkx MultiGraph with georeferenced geometry.

Nodes carry ``x``, ``y`` (CRS units), ``degree`` and ``kind`` (junction | end | boundary |
loop; ``boundary``: a road end where the data stops -- the raster border or the AOI's edge --
not a dead end);
edges carry ``geometry`` (shapely LineString in the CRS), ``length_m``, ``mean_prob``
(NaN without a probability map), ``bridged`` (a gap was joined on it) and ``n_vertices``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RoadNetwork:
    """A georeferenced road graph.

    Attributes:
        graph: ``networkx.MultiGraph`` (see module docstring for attributes).
        crs: ``pyproj.CRS`` of the coordinates, or None.
        stats: counts from the clean-up (spurs pruned, gaps bridged, ...).
    """

    graph: object
    crs: object = None
    stats: dict = field(default_factory=dict)

    @property
    def n_edges(self) -> int:
        return self.graph.number_of_edges()

    @property
    def n_nodes(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def total_length_m(self) -> float:
        return float(sum(d["length_m"] for _, _, d in self.graph.edges(data=True)))

    @property
    def is_empty(self) -> bool:
        return self.n_edges == 0

    def to_geodataframes(self):
        """``(roads, nodes)`` GeoDataFrames in the network's CRS.

        roads: LineString; edge_id, u, v, length_m, mean_prob, bridged, n_vertices.
        nodes: Point; node_id, degree, kind.
        """
        import geopandas as gpd
        import pandas as pd
        import shapely

        # u -> v in the digitising direction of the geometry (networkx may report v, u)
        edges = [(*oriented_ends(self.graph, u, v, d["geometry"]), k, d) for u, v, k, d in self.graph.edges(keys=True, data=True)]
        roads = pd.DataFrame(
            {
                "edge_id": np.arange(len(edges), dtype=np.int64),
                "u": np.array([u for u, _, _, _ in edges], dtype=np.int64),
                "v": np.array([v for _, v, _, _ in edges], dtype=np.int64),
                "length_m": np.array([d["length_m"] for *_, d in edges], dtype=np.float64),
                "mean_prob": np.array([d.get("mean_prob", np.nan) for *_, d in edges], dtype=np.float64),
                "bridged": np.array([bool(d.get("bridged", False)) for *_, d in edges], dtype=bool),
                "n_vertices": np.array([d.get("n_vertices", 0) for *_, d in edges], dtype=np.int64),
            }
        )
        road_geoms = [d["geometry"] for *_, d in edges]
        roads_gdf = gpd.GeoDataFrame(roads, geometry=gpd.GeoSeries(road_geoms, crs=self.crs), crs=self.crs)
        nodes = list(self.graph.nodes(data=True))
        nodes_df = pd.DataFrame(
            {
                "node_id": np.array([n for n, _ in nodes], dtype=np.int64),
                "degree": np.array([d["degree"] for _, d in nodes], dtype=np.int64),
                "kind": pd.Series([d["kind"] for _, d in nodes], dtype="string"),
            }
        )
        pts = shapely.points([d["x"] for _, d in nodes], [d["y"] for _, d in nodes]) if nodes else []
        nodes_gdf = gpd.GeoDataFrame(nodes_df, geometry=gpd.GeoSeries(pts, crs=self.crs), crs=self.crs)
        return roads_gdf, nodes_gdf


def oriented_ends(graph, u, v, line) -> tuple:
    """``(u, v)`` ordered so that ``line`` runs from u to v.

    networkx reports an undirected edge's ends in adjacency order, not in the order it was
    added, so the geometry may run from v to u.
    """
    x0, y0 = line.coords[0]
    du = (graph.nodes[u]["x"] - x0) ** 2 + (graph.nodes[u]["y"] - y0) ** 2
    dv = (graph.nodes[v]["x"] - x0) ** 2 + (graph.nodes[v]["y"] - y0) ** 2
    return (u, v) if du <= dv else (v, u)


def node_kind(degree: int, *, on_boundary: bool = False) -> str:
    """``end`` (degree 1), ``boundary`` (degree 1 where the data stops: the road goes on
    outside the raster or the AOI), ``junction`` (3 or more), ``loop`` (2: a node on a closed ring)."""
    if degree <= 1:
        return "boundary" if on_boundary else "end"
    return "junction" if degree >= 3 else "loop"


def build_road_network(g, transform, *, crs, shape, prob=None, simplify_tolerance_px: float = 0.0) -> RoadNetwork:
    """Georeference an :class:`~geodefect.graph.simplify.EditableGraph` into a RoadNetwork.

    Nodes in ``g.protected`` (ends on the raster border or next to nodata) of degree 1 get
    ``kind = "boundary"``. Pixel (row, col) becomes ``transform * (col + 0.5, row + 0.5)``; lines are simplified with
    Ramer–Douglas–Peucker in pixel units (endpoints always kept) before georeferencing.
    """
    import networkx as nx
    import shapely
    from pyproj import CRS

    crs = CRS.from_user_input(crs) if crs is not None else None
    graph = nx.MultiGraph(crs=crs.to_wkt() if crs is not None else None)
    eids = list(g.edges)
    nodes = sorted({n for e in eids for n in (g.edges[e].u, g.edges[e].v)})
    if not eids:
        return RoadNetwork(graph=graph, crs=crs)
    renumber = {n: i for i, n in enumerate(nodes)}
    paths = [g.edges[e].path for e in eids]
    closed = [g.edges[e].u == g.edges[e].v for e in eids]
    parts = _point_chunks(paths)  # the pixel paths' temporaries a chunk at a time (a city's graph is large)
    lines = np.concatenate([_georeference(_simplified_lines(paths[s], closed[s], simplify_tolerance_px), transform) for s in parts])
    lengths = line_lengths_m(lines, crs)
    mean_prob = np.concatenate([_mean_along(paths[s], prob) for s in parts])
    xy = _georeference_points(g.node_rc[nodes], transform)
    degree = {n: g.degree(n) for n in nodes}
    boundary = getattr(g, "protected", set())
    for n, (x, y) in zip(nodes, xy.tolist(), strict=True):
        graph.add_node(renumber[n], x=x, y=y, degree=degree[n], kind=node_kind(degree[n], on_boundary=n in boundary))
    for i, e in enumerate(eids):
        edge = g.edges[e]
        graph.add_edge(
            renumber[edge.u], renumber[edge.v], i,  # explicit key: networkx's key search is slow
            geometry=lines[i], length_m=float(lengths[i]), mean_prob=float(mean_prob[i]),
            bridged=edge.bridged, n_vertices=int(shapely.get_num_coordinates(lines[i])),
        )
    return RoadNetwork(graph=graph, crs=crs)


def _point_chunks(paths, max_points: int = 2**16) -> list[slice]:
    """Slices of ``paths`` holding about ``max_points`` points each (at least one path)."""
    ends = np.cumsum([len(p) for p in paths])
    out, start = [], 0
    while start < len(paths):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + max_points, side="right")), start + 1)
        out.append(slice(start, stop))
        start = stop
    return out


def _simplified_lines(paths, closed, tolerance_px):
    import shapely

    coords = np.concatenate(paths)[:, ::-1] + 0.5  # (row, col) -> (x=col, y=row) pixel centres
    index = np.repeat(np.arange(len(paths)), [len(p) for p in paths])
    lines = shapely.linestrings(coords, indices=index)
    if tolerance_px <= 0:
        return lines
    closed = np.asarray(closed)
    out = shapely.simplify(lines, tolerance_px, preserve_topology=False)
    if closed.any():
        out[closed] = shapely.simplify(lines[closed], tolerance_px, preserve_topology=True)
    return out


def _georeference(lines, transform):
    import shapely

    m = np.array([[transform.a, transform.b], [transform.d, transform.e]])
    t = np.array([transform.c, transform.f])
    return shapely.transform(lines, lambda pts: pts @ m.T + t)


def _georeference_points(node_rc, transform) -> np.ndarray:
    cols, rows = node_rc[:, 1] + 0.5, node_rc[:, 0] + 0.5
    x = transform.a * cols + transform.b * rows + transform.c
    y = transform.d * cols + transform.e * rows + transform.f
    return np.stack([x, y], axis=1)


def line_lengths_m(lines, crs) -> np.ndarray:
    """Lengths in metres: geodesic (pyproj.Geod) for a geographic CRS, planar otherwise."""
    import shapely

    lines = np.asarray(lines, dtype=object)
    if crs is None or not crs.is_geographic:
        factor = crs.axis_info[0].unit_conversion_factor if crs is not None and crs.axis_info else 1.0
        return shapely.length(lines) * factor
    coords, index = shapely.get_coordinates(lines, return_index=True)
    same = index[1:] == index[:-1]
    _, _, dist = crs.get_geod().inv(coords[:-1, 0][same], coords[:-1, 1][same], coords[1:, 0][same], coords[1:, 1][same])
    return np.bincount(index[1:][same], weights=dist, minlength=len(lines))


def _mean_along(paths, prob) -> np.ndarray:
    """Mean probability at each path's (rounded) pixels; NaN without ``prob``."""
    if prob is None:
        return np.full(len(paths), np.nan)
    coords = np.concatenate(paths)
    rows = np.clip(np.rint(coords[:, 0]).astype(np.int64), 0, prob.shape[0] - 1)
    cols = np.clip(np.rint(coords[:, 1]).astype(np.int64), 0, prob.shape[1] - 1)
    values = np.nan_to_num(prob[rows, cols].astype(np.float64))
    index = np.repeat(np.arange(len(paths)), [len(p) for p in paths])
    return np.bincount(index, weights=values, minlength=len(paths)) / np.bincount(index, minlength=len(paths))
