"""Probability raster -> clean, georeferenced road network (arrays + Affine in, lines out).

Pipeline: threshold -> (optionally remove small objects, fill small holes) -> skeletonize ->
pixel graph -> merge degree-2 chains -> straighten ends cut by nodata (the AOI) -> open loops
round small holes -> prune spurs (by length) -> merge close junctions -> bridge gaps end to
end and end to road (direction from the predicted orientation bins, else the edge tangent) ->
prune spurs against the road width -> drop small components -> merge degree-2 chains ->
Ramer–Douglas–Peucker in metres -> LineStrings in the raster CRS (pixel centres,
``transform * (col + 0.5, row + 0.5)``).

All tolerances are in metres and converted with the pixel size; for a geographic CRS that is
the geodesic size of a pixel at the raster's centre, and lengths are geodesic (pyproj.Geod).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geodefect.errors import InputError
from geodefect.graph.boundary import extend_ends_to_nodata
from geodefect.graph.bridge import bridge_ends_to_edges, bridge_gaps
from geodefect.graph.build import skeleton_to_graph
from geodefect.graph.junctions import merge_close_junctions
from geodefect.graph.network import RoadNetwork, build_road_network
from geodefect.graph.simplify import (
    EditableGraph,
    drop_small_components,
    merge_degree_two,
    prune_spurs,
    remove_small_loops,
    tangent_direction,
)
from geodefect.graph.skeleton import (
    fill_small_holes,
    remove_small_objects,
    skeletonize_mask,
    threshold_probability,
)
from geodefect.graph.spurs import prune_wide_spurs

__all__ = [
    "RoadNetwork",
    "VectorizeParams",
    "pixel_size_m",
    "vectorize_road_mask",
    "vectorize_road_probability",
]


@dataclass(frozen=True)
class VectorizeParams:
    """Settings of the vectorisation, in metres (converted with the pixel size).

    The defaults follow CRESI's SpaceNet-5 settings at 0.3 m pixels: spurs under 10 m
    removed, gaps under 24 px (7.2 m) joined, up to 80 px (24 m) when collinear, within 38°
    here (CRESI: 30°; road ends a model breaks off before a junction curve into it, see
    BENCHMARKS.md "Fifth round").

    Attributes:
        threshold: road probability at or above which a pixel is road.
        smooth_sigma_m: Gaussian blur of the probabilities before thresholding (removes
            checkerboard artefacts of stride-2 decoders; 0 = off; not applied to masks).
        min_object_area_m2: road blobs smaller than this are removed before thinning
            (0 = off, the default: it costs a labelling pass over the raster, and
            ``min_component_m`` drops what such blobs thin to).
        max_hole_area_m2: holes in the mask up to this size that fit in a disc of this area
            (a car, a tree; not the median between two carriageways) are filled before thinning (``skeleton.fill_small_holes``), and loops of the skeleton
            that only go round a hole up to this size are opened (``simplify.remove_small_loops``;
            0 = off).
        min_spur_m: dead-end branches shorter than this are pruned (repeatedly).
        spur_width_ratio: dead ends shorter than this times the widest half-width of road
            they run through are pruned too (a branch into a parking lot or a driveway's
            apron; ``spurs.prune_wide_spurs``; 0 = off).
        junction_merge_m: junctions joined by edges shorter than this are merged into one
            node (an X thinned into two T-junctions a few metres apart; 0 = off).
        bridge_gap_m: end nodes closer than this are joined (CRESI: always).
        bridge_collinear_gap_m: end nodes up to this far apart are joined when collinear.
        bridge_angle_deg: collinearity tolerance between the gap and the road direction at
            both ends.
        bridge_to_edge_gap_m: an end pointing at the side of another road this close is
            joined to it (a T junction; 0 = off).
        bridge_to_edge_angle_deg: tolerance between the end's direction and the gap to the
            nearest point of that road (60° admits side roads meeting at 30° or more).
        tangent_m: length of road near an end used for its direction (orientation bins are
            averaged over it; the edge tangent is the chord over it).
        min_component_m: connected pieces with less total road length are dropped.
        simplify_tolerance_m: Ramer–Douglas–Peucker tolerance (0 = keep every pixel vertex).
        border_pad_m: mirrored padding before thinning so roads reach the raster border.
        max_junction_span_m: a cluster of junction pixels at least this wide (a noisy
            prediction's mesh) is cut into cells of this size instead of being one node.
    """

    threshold: float = 0.5
    smooth_sigma_m: float = 0.3
    min_object_area_m2: float = 0.0
    fill_hole_area_m2: float = 0.0
    max_hole_area_m2: float = 30.0
    min_spur_m: float = 10.0
    spur_width_ratio: float = 2.5
    junction_merge_m: float = 8.0
    bridge_gap_m: float = 7.2
    bridge_collinear_gap_m: float = 24.0
    bridge_angle_deg: float = 38.0
    bridge_to_edge_gap_m: float = 7.2
    bridge_to_edge_angle_deg: float = 60.0
    tangent_m: float = 6.0
    min_component_m: float = 15.0
    simplify_tolerance_m: float = 1.0
    border_pad_m: float = 10.0
    max_junction_span_m: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"`threshold` must be in (0, 1), got {self.threshold!r}")
        for name in (
            "smooth_sigma_m", "min_object_area_m2", "fill_hole_area_m2", "max_hole_area_m2", "min_spur_m", "spur_width_ratio", "junction_merge_m", "bridge_gap_m",
            "bridge_collinear_gap_m", "bridge_to_edge_gap_m", "tangent_m", "min_component_m", "simplify_tolerance_m",
            "border_pad_m", "max_junction_span_m",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InputError(f"`{name}` must be a number >= 0 (metres), got {value!r}")
        for name in ("bridge_angle_deg", "bridge_to_edge_angle_deg"):
            if not 0.0 <= getattr(self, name) <= 90.0:
                raise InputError(f"`{name}` must be in 0..90 degrees, got {getattr(self, name)!r}")


def vectorize_road_probability(
    prob: np.ndarray,
    transform,
    *,
    orientation: np.ndarray | None = None,
    bin_deg: float | None = None,
    params: VectorizeParams = VectorizeParams(),  # noqa: B008 (frozen, immutable)
    crs=None,
) -> RoadNetwork:
    """Road network of a road probability raster.

    Args:
        prob: (H, W) float32 in [0, 1]; NaN is nodata (background).
        transform: ``affine.Affine`` of the raster (pixel -> CRS).
        orientation: (K, H, W) float orientation-bin probabilities or None. K is
            ``360 / bin_deg + 1`` (channel 0 = background, the model's layout) or ``360 / bin_deg``.
            Only read at the pixels near road ends (``orientation[:, rows, cols]``), so a memory
            map, a strided view of one, or an object with ``shape``, ``ndim`` and that indexing
            (``geodefect.inference.road_outputs.SparseBins``: bins on road pixels only) costs no
            memory. Pixels whose bins are all 0 do not change an end's direction.
        bin_deg: orientation bin width in degrees; required with ``orientation``.
        params: :class:`VectorizeParams`.
        crs: CRS of the raster (anything pyproj accepts) or None (units taken as metres).

    Returns:
        :class:`RoadNetwork`; an empty one when nothing is above the threshold.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise InputError(f"`prob` must be a (H, W) array, got shape {prob.shape}")
    sigma_px = params.smooth_sigma_m / float(np.mean(pixel_size_m(transform, crs, prob.shape)))
    mask = threshold_probability(prob, threshold=params.threshold, smooth_sigma_px=sigma_px)
    return vectorize_road_mask(
        mask, transform, orientation=orientation, bin_deg=bin_deg, params=params, crs=crs, prob=prob
    )


def vectorize_road_mask(
    mask: np.ndarray,
    transform,
    *,
    orientation: np.ndarray | None = None,
    bin_deg: float | None = None,
    params: VectorizeParams = VectorizeParams(),  # noqa: B008
    crs=None,
    prob: np.ndarray | None = None,
) -> RoadNetwork:
    """Road network of a boolean road mask (same steps as :func:`vectorize_road_probability`).

    Args:
        mask: (H, W) bool (or 0/1) road mask.
        transform, orientation, bin_deg, params, crs: as :func:`vectorize_road_probability`.
        prob: optional (H, W) probabilities, only used for the ``mean_prob`` edge attribute.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"`mask` must be a (H, W) array, got shape {mask.shape}")
    bins = _check_orientation(orientation, bin_deg, mask.shape)
    scale_rc = pixel_size_m(transform, crs, mask.shape)
    mean_px = (scale_rc[0] + scale_rc[1]) / 2
    pad_px = int(math.ceil(params.border_pad_m / mean_px))
    mask = prepare_mask(mask, params, scale_rc)
    skel = skeletonize_mask(mask, border_pad_px=pad_px)
    pixel_graph = skeleton_to_graph(skel, max_cluster_span_px=junction_span_px(params, scale_rc))
    del skel
    g = EditableGraph.from_pixel_graph(pixel_graph, scale_rc=scale_rc)
    return finish_network(g, mask, prob, transform, crs=crs, bins=bins, bin_deg=bin_deg, params=params)


def junction_span_px(params: VectorizeParams, scale_rc) -> int:
    """``max_junction_span_m`` in pixels (at least 2): the cell size of large junction clusters."""
    return max(int(round(params.max_junction_span_m / ((scale_rc[0] + scale_rc[1]) / 2))), 2)


def prepare_mask(mask: np.ndarray, params: VectorizeParams, scale_rc) -> np.ndarray:
    """The road mask as thinned: small objects removed, small holes filled (both off by default)."""
    area_px = scale_rc[0] * scale_rc[1]
    mask = mask.astype(bool, copy=False)
    if params.min_object_area_m2 > 0:
        mask = remove_small_objects(mask, min_object_area_px=int(params.min_object_area_m2 / area_px))
    if params.fill_hole_area_m2 > 0:
        diameter_m = 2 * math.sqrt(params.fill_hole_area_m2 / math.pi)  # a hole must fit in a disc of that area
        mask = fill_small_holes(mask, max_hole_area_px=params.fill_hole_area_m2 / area_px,
                                max_extent_rc_px=(diameter_m / scale_rc[0], diameter_m / scale_rc[1]))
    return mask


def finish_network(g: EditableGraph, mask, prob, transform, *, crs, bins, bin_deg, params: VectorizeParams) -> RoadNetwork:
    """Pixel graph (before any merge) -> clean RoadNetwork: the steps after thinning.

    Marks ends where the data stops, merges chains, straightens ends cut by nodata, opens
    loops round holes, cleans (:func:`clean_graph`) and georeferences. ``mask`` and ``prob``
    are only read near nodes and along edges (windows, point lookups), so they may be lazy
    block readers (:mod:`geodefect.graph.tiled`) with ``shape``, ``dtype`` and numpy indexing.
    """
    scale_rc = g.scale_rc
    area_px = scale_rc[0] * scale_rc[1]
    mean_px = (scale_rc[0] + scale_rc[1]) / 2
    pad_px = int(math.ceil(params.border_pad_m / mean_px))
    ends = np.array([n for n, inc in g.incident.items() if len(inc) <= 1], dtype=np.int64)
    g.protected = {int(ends[i]) for i in edge_of_data_nodes(g.node_rc[ends], mask, prob, radius_px=pad_px)}
    merge_degree_two(g)
    stats_cut = _straighten_cut_ends(g, prob, mask.shape, params, max_px=pad_px + int(params.tangent_m / mean_px) + 2)
    loops = remove_small_loops(g, mask, max_hole_area_px=params.max_hole_area_m2 / area_px)
    stats = clean_graph(g, params, end_direction=_end_direction_fn(bins, bin_deg, scale_rc, params.tangent_m), mask=mask)
    stats["hole_loops_opened"] = loops
    stats["ends_extended_to_aoi"] = stats_cut
    network = build_road_network(
        g, transform, crs=crs, shape=mask.shape, prob=prob,
        simplify_tolerance_px=params.simplify_tolerance_m / mean_px,
    )
    network.stats.update(stats, pixel_size_m=[round(v, 6) for v in scale_rc])
    return network


def clean_graph(g: EditableGraph, params: VectorizeParams, *, end_direction, mask=None) -> dict[str, int]:
    """Prune spurs, merge close junctions, bridge gaps (end to end, then end to road), prune spurs
    against the road width (when ``mask`` is given), drop small components, merge chains."""
    stats = {"spurs_pruned": prune_spurs(g, min_spur_m=params.min_spur_m)}
    stats["junctions_merged"] = merge_close_junctions(g, junction_merge_m=params.junction_merge_m)
    stats["gaps_bridged"] = bridge_gaps(
        g,
        short_gap_m=params.bridge_gap_m,
        long_gap_m=max(params.bridge_collinear_gap_m, params.bridge_gap_m),
        angle_deg=params.bridge_angle_deg,
        end_direction=end_direction,
    )
    stats["ends_joined_to_roads"] = bridge_ends_to_edges(
        g, max_gap_m=params.bridge_to_edge_gap_m, angle_deg=params.bridge_to_edge_angle_deg,
        end_direction=end_direction,
    )
    if mask is not None:  # after bridging: a road cut by a gap beside a wide junction is joined first
        stats["wide_spurs_pruned"] = prune_wide_spurs(g, mask, spur_width_ratio=params.spur_width_ratio)
    stats["small_edges_dropped"] = drop_small_components(g, min_component_m=params.min_component_m)
    merge_degree_two(g)
    return stats


def edge_of_data_nodes(
    node_rc: np.ndarray, mask: np.ndarray, prob: np.ndarray | None, *, radius_px: int
) -> set[int]:
    """Indices of the nodes (rows of ``node_rc``) where a road leaves the data: on the raster
    border, or cut by nodata (NaN in ``prob``). Callers pass only end nodes (cheaper).

    Such an end is not a dead end, so it must not be pruned, bridged to a neighbour, or
    dropped with a short component. Thinning pulls a cut end back from the cut by about half
    the road's width, so a node counts as cut when nodata lies within 1.5 local half-widths
    (+ 1.5 px) of it, looking no farther than ``radius_px``.
    """
    if len(node_rc) == 0:
        return set()
    shape = mask.shape
    rows, cols = np.rint(node_rc[:, 0]).astype(np.int64), np.rint(node_rc[:, 1]).astype(np.int64)
    edge = (rows <= 0) | (cols <= 0) | (rows >= shape[0] - 1) | (cols >= shape[1] - 1)
    if prob is not None and np.issubdtype(prob.dtype, np.floating):
        for i in np.flatnonzero(~edge):
            edge[i] = _cut_by_nodata(rows[i], cols[i], mask, prob, radius_px)
    return set(np.flatnonzero(edge).tolist())


def _straighten_cut_ends(g: EditableGraph, prob, shape, params: VectorizeParams, *, max_px: int) -> int:
    """Ends cut by nodata (not the raster border, which mirroring handles) drawn straight onto the nodata edge."""
    if prob is None or not np.issubdtype(prob.dtype, np.floating) or not g.protected:
        return 0
    cut = [n for n in g.protected if not _on_border(g.node_rc[n], shape)]
    return extend_ends_to_nodata(g, prob, ends=cut, trim_m=params.tangent_m, tangent_m=params.tangent_m, max_px=max_px)


def _on_border(rc: np.ndarray, shape) -> bool:
    row, col = int(round(rc[0])), int(round(rc[1]))
    return row <= 0 or col <= 0 or row >= shape[0] - 1 or col >= shape[1] - 1


def _cut_by_nodata(row: int, col: int, mask: np.ndarray, prob: np.ndarray, radius_px: int) -> bool:
    r0, c0 = max(row - radius_px, 0), max(col - radius_px, 0)
    win = np.s_[r0 : row + radius_px + 1, c0 : col + radius_px + 1]
    nodata = np.isnan(prob[win])
    if not nodata.any():
        return False
    background = ~mask[win] | nodata
    rr, cc = np.nonzero(background)
    half_width = np.hypot(rr + r0 - row, cc + c0 - col).min()
    nr, nc = np.nonzero(nodata)
    return bool(np.hypot(nr + r0 - row, nc + c0 - col).min() <= 1.5 * half_width + 1.5)


def pixel_size_m(transform, crs, shape: tuple[int, int]) -> tuple[float, float]:
    """(row_m, col_m): the size of one pixel in metres along rows and columns.

    Projected CRS: the transform's pixel size times the CRS unit's metres. Geographic CRS:
    geodesic size of the pixel at the raster centre. No CRS: the transform's units as metres.
    """
    col_size = math.hypot(transform.a, transform.d)
    row_size = math.hypot(transform.b, transform.e)
    if crs is None:
        return (row_size, col_size)
    from pyproj import CRS

    crs = CRS.from_user_input(crs)
    if not crs.is_geographic:
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return (row_size * factor, col_size * factor)
    geod = crs.get_geod()
    c_col, c_row = shape[1] / 2, shape[0] / 2
    x0, y0 = _apply(transform, c_col, c_row)
    x1, y1 = _apply(transform, c_col + 1, c_row)
    x2, y2 = _apply(transform, c_col, c_row + 1)
    _, _, d_col = geod.inv(x0, y0, x1, y1)
    _, _, d_row = geod.inv(x0, y0, x2, y2)
    return (float(d_row), float(d_col))


def _apply(transform, col: float, row: float) -> tuple[float, float]:
    return (
        transform.a * col + transform.b * row + transform.c,
        transform.d * col + transform.e * row + transform.f,
    )


def _check_orientation(orientation, bin_deg, shape) -> np.ndarray | None:
    """The (n_bins, H, W) orientation probabilities without the background channel, or None."""
    if orientation is None:
        return None
    if not (hasattr(orientation, "shape") and hasattr(orientation, "ndim")):  # keep memmaps / SparseBins as they are
        orientation = np.asarray(orientation)
    if bin_deg is None:
        raise InputError("`bin_deg` is required with `orientation` (the model recipe has it)")
    n_bins = int(round(360 / float(bin_deg)))
    if orientation.ndim != 3 or orientation.shape[1:] != tuple(shape):
        raise InputError(f"`orientation` must be (K, {shape[0]}, {shape[1]}), got {orientation.shape}")
    if orientation.shape[0] == n_bins + 1:
        return orientation[1:]
    if orientation.shape[0] == n_bins:
        return orientation
    raise InputError(
        f"`orientation` has {orientation.shape[0]} channels; with bin_deg={bin_deg} expected "
        f"{n_bins + 1} (background + bins) or {n_bins}"
    )


def _end_direction_fn(bins, bin_deg, scale_rc, tangent_m):
    """Direction of the road at an end: orientation bins when given, else the edge tangent."""

    def direction(path_to_end: np.ndarray) -> np.ndarray | None:
        tangent = tangent_direction(path_to_end, scale_rc, tangent_m=tangent_m)
        if bins is None:
            return tangent
        axis = orientation_axis(bins, path_to_end, bin_deg=bin_deg, scale_rc=scale_rc, tangent_m=tangent_m)
        if axis is None:
            return tangent
        if tangent is not None and float(axis @ tangent) < 0:
            axis = -axis
        return axis

    return direction


def orientation_axis(
    bins: np.ndarray, path_to_end: np.ndarray, *, bin_deg: float, scale_rc, tangent_m: float
) -> np.ndarray | None:
    """Road axis (unit metric (row, col), sign arbitrary) from orientation bins near a path's end.

    The bin probabilities are averaged over the path's pixels within ``tangent_m`` of the end;
    the axial mean of the bin centres (angles doubled, so θ and θ + 180° agree) gives the axis.
    Returns None when the bins carry no clear direction (resultant length < 0.3).

    Args:
        bins: (n_bins, H, W) probabilities of bins 1..n_bins (no background channel).
        path_to_end: (K, 2) (row, col) path ending at the end node.
    """
    pts = path_to_end * np.asarray(scale_rc)
    back = np.r_[0.0, np.cumsum(np.hypot(*np.diff(pts[::-1], axis=0).T))]
    near = path_to_end[::-1][back <= tangent_m]
    rows = np.clip(np.rint(near[:, 0]).astype(int), 0, bins.shape[1] - 1)
    cols = np.clip(np.rint(near[:, 1]).astype(int), 0, bins.shape[2] - 1)
    p = bins[:, rows, cols].astype(np.float64).mean(axis=1)
    total = p.sum()
    if total <= 1e-6:
        return None
    theta = np.radians((np.arange(len(p)) + 0.5) * float(bin_deg))
    z = (p * np.exp(2j * theta)).sum() / total
    if abs(z) < 0.3:
        return None
    alpha = np.angle(z) / 2
    axis = np.array([-np.sin(alpha) * scale_rc[0], np.cos(alpha) * scale_rc[1]])
    return axis / np.hypot(*axis)
