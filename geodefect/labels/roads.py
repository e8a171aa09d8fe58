"""Road labels burned per window: a road mask (buffer in metres or thresholded Gaussian) and
orientation bins, from centerlines prepared once.

Memory does not grow with the raster: the centerlines are split into two-point segments
and buffered once (an STRtree indexes them); each :meth:`RoadLabeler.burn` queries the
segments that touch the window and rasterizes only those into the window's own transform
and shape. Burning window by window therefore gives exactly the crop of a whole-raster burn
(the pixel-centre rule of ``rasterio.features.rasterize`` does not depend on the window).

Masks
    ``mode="buffer"``: pixels whose centre lies within ``buffer_m`` metres (the road
    *half*-width) of a centerline. Metres are measured in the raster CRS when it is projected
    (its linear unit converted), and in a local UTM zone when it is geographic (EPSG:4326
    SpaceNet tiles): segments are projected there, buffered, and the polygons transformed back.

    ``mode="gaussian"``: Batra et al. (CVPR 2019) label a pixel road when
    ``exp(-d² / (2σ²)) >= t`` for its distance ``d`` in pixels to the centerline. That is the
    same set as ``d <= σ·sqrt(-2 ln t)`` (11.1 px for σ = 15 px, t = 0.76), so the
    thresholded Gaussian is burned exactly as a buffer of that many pixels; no distance
    transform is needed.

Orientation
    Each segment's band of ``width_px`` pixels (``width_px / 2`` either side, round ends so
    that bends have no gaps) gets the segment's bin (see :mod:`geodefect.labels.orientation`).
    Where bands overlap (junctions, bends) the segment that comes *later* in the input —
    later feature, or later along the same line — wins. Pixel sizes in CRS units are taken
    as ``sqrt(|a·e − b·d|)`` of the window transform (square pixels assumed).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import shapely
from affine import Affine

from geodefect.errors import InputError
from geodefect.labels.orientation import (
    angle_to_bin,
    segment_angles_deg,
    validate_bin_deg,
    world_to_pixel_deltas,
)

log = logging.getLogger(__name__)

LABEL_MODES = ("buffer", "gaussian")
_QUAD_SEGS = 4  # vertices per quarter circle of buffer ends: enough at road widths


class WindowLabels(NamedTuple):
    """Labels of one window: ``mask`` (H, W) uint8 0/1 and ``orientation`` (H, W) uint8 bins."""

    mask: np.ndarray
    orientation: np.ndarray


def gaussian_half_width_px(sigma_px: float, threshold: float) -> float:
    """Distance in pixels where ``exp(-d²/(2σ²))`` falls to ``threshold``: ``σ·sqrt(-2 ln t)``."""
    if not sigma_px > 0:
        raise InputError(f"`sigma_px` must be > 0, got {sigma_px!r}")
    if not 0 < threshold < 1:
        raise InputError(f"`threshold` of the Gaussian label must be in (0, 1), e.g. 0.76, got {threshold!r}")
    return float(sigma_px * np.sqrt(-2.0 * np.log(threshold)))


class RoadLabeler:
    """Centerlines prepared once for burning road masks and orientation bins window by window.

    Args:
        lines: centerlines as a GeoDataFrame/GeoSeries (reprojected to ``crs`` if theirs
            differs) or a sequence/array of shapely LineStrings already in ``crs``.
            Multi-part lines are split; empties and zero-length segments are dropped.
        crs: the raster's CRS (anything pyproj accepts: rasterio CRS, WKT, "EPSG:32631").
        mode: ``"buffer"`` (half-width ``buffer_m`` in metres) or ``"gaussian"``.
        buffer_m: road half-width in metres for ``mode="buffer"``.
        sigma_px, threshold: Gaussian label parameters for ``mode="gaussian"``.
        bin_deg: orientation bin width in degrees (must divide 360).
        width_px: width of the orientation band in pixels (half either side of the line).
    """

    def __init__(
        self,
        lines,
        crs,
        *,
        mode: str = "buffer",
        buffer_m: float = 2.0,
        sigma_px: float = 15.0,
        threshold: float = 0.76,
        bin_deg: int = 20,
        width_px: float = 8.0,
    ) -> None:
        from pyproj import CRS

        if mode not in LABEL_MODES:
            raise InputError(f"`label` mode must be one of {', '.join(LABEL_MODES)}, got {mode!r}")
        if mode == "buffer" and not buffer_m > 0:
            raise InputError(f"`buffer_m` (road half-width in metres) must be > 0, got {buffer_m!r}")
        if not width_px > 0:
            raise InputError(f"`width_px` of the orientation band must be > 0, got {width_px!r}")
        self.crs = CRS.from_user_input(crs)
        self.mode = mode
        self.buffer_m = float(buffer_m)
        self.sigma_px = float(sigma_px)
        self.threshold = float(threshold)
        self.bin_deg = validate_bin_deg(bin_deg)
        self.width_px = float(width_px)
        self.gaussian_radius_px = gaussian_half_width_px(sigma_px, threshold) if mode == "gaussian" else None
        self.lines = _to_line_array(lines, self.crs)
        self.segments = _split_segments(self.lines)
        coords = shapely.get_coordinates(self.segments).reshape(-1, 2, 2)
        self._dx = coords[:, 1, 0] - coords[:, 0, 0]
        self._dy = coords[:, 1, 1] - coords[:, 0, 1]
        self._metric_mask = _buffer_metric(self.segments, self.crs, self.buffer_m) if mode == "buffer" else None
        self._prepared: dict[tuple[float, ...], _Prepared] = {}

    @property
    def n_segments(self) -> int:
        return len(self.segments)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the centerlines in the raster CRS (NaN if empty)."""
        return tuple(shapely.total_bounds(self.lines))

    def length_m(self) -> float:
        """Total centerline length in metres (geodesic on WGS84 when the CRS is geographic)."""
        if len(self.lines) == 0:
            return 0.0
        if self.crs.is_geographic:
            from pyproj import Geod, Transformer

            to_ll = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
            ll = shapely.transform(self.lines, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
            geod = Geod(ellps="WGS84")
            return float(sum(geod.geometry_length(g) for g in ll))
        return float(shapely.length(self.lines).sum() * _metres_per_unit(self.crs))

    def burn(self, transform: Affine, height: int, width: int) -> WindowLabels:
        """Burn the labels of one window.

        Args:
            transform: the window's affine transform (e.g. ``rasterio.windows.transform(w, t)``).
            height, width: window shape in pixels.

        Returns:
            ``WindowLabels(mask, orientation)``, both (height, width) uint8: mask 0/1,
            orientation 0 (background) or 1..360/bin_deg.
        """
        from rasterio.features import rasterize

        shape = (int(height), int(width))
        mask = np.zeros(shape, np.uint8)
        orient = np.zeros(shape, np.uint8)
        if self.n_segments == 0 or shape[0] < 1 or shape[1] < 1:
            return WindowLabels(mask, orient)
        prep = self._prepare(transform)
        footprint = shapely.box(*_window_bounds(transform, shape))
        hits = np.sort(prep.mask_tree.query(footprint, predicate="intersects"))
        if hits.size:
            rasterize(prep.mask_geoms[hits], out_shape=shape, transform=transform, fill=0,
                      default_value=1, dtype="uint8", out=mask)
        hits = np.sort(prep.orient_tree.query(footprint, predicate="intersects"))
        if hits.size:
            shapes = zip(prep.orient_geoms[hits], prep.orient_bins[hits].tolist(), strict=True)
            rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8", out=orient)
        return WindowLabels(mask, orient)

    def _prepare(self, transform: Affine) -> _Prepared:
        """Geometry that depends on the pixel grid (not on the window's offset), cached."""
        key = tuple(round(v, 15) for v in (transform.a, transform.b, transform.d, transform.e))
        prep = self._prepared.get(key)
        if prep is None:
            pixel = float(np.sqrt(abs(transform.a * transform.e - transform.b * transform.d)))
            if self.mode == "buffer":
                mask_geoms = self._metric_mask
            else:
                mask_geoms = shapely.buffer(self.segments, self.gaussian_radius_px * pixel, quad_segs=_QUAD_SEGS)
            orient_geoms = shapely.buffer(self.segments, self.width_px / 2 * pixel, quad_segs=_QUAD_SEGS)
            d_col, d_row = world_to_pixel_deltas(self._dx, self._dy, transform)
            bins = angle_to_bin(segment_angles_deg(d_col, d_row), bin_deg=self.bin_deg)
            prep = _Prepared(mask_geoms, orient_geoms, bins)
            self._prepared[key] = prep
        return prep


class _Prepared:
    def __init__(self, mask_geoms: np.ndarray, orient_geoms: np.ndarray, orient_bins: np.ndarray):
        self.mask_geoms = mask_geoms
        self.mask_tree = shapely.STRtree(mask_geoms)
        self.orient_geoms = orient_geoms
        self.orient_bins = orient_bins
        self.orient_tree = shapely.STRtree(orient_geoms)


def _window_bounds(transform: Affine, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    h, w = shape
    xs, ys = zip(*(transform * (c, r) for c, r in ((0, 0), (w, 0), (0, h), (w, h))), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def _to_line_array(lines, crs) -> np.ndarray:
    """Centerlines as a flat array of non-empty shapely LineStrings in ``crs``."""
    geoms = getattr(lines, "geometry", lines)
    src_crs = getattr(geoms, "crs", None)
    if src_crs is not None and not crs.equals(src_crs):
        geoms = geoms.to_crs(crs)
    arr = np.asarray(getattr(geoms, "values", geoms), dtype=object)
    if arr.size == 0:
        return np.empty(0, dtype=object)
    arr = np.asarray(shapely.get_parts(arr[~shapely.is_missing(arr)]), dtype=object)
    types = shapely.get_type_id(arr)
    bad = ~np.isin(types, (1, 2))  # LineString, LinearRing
    if bad.any():
        raise InputError(
            f"centerlines must be LineStrings; got {int(bad.sum())} other geometries "
            f"(e.g. {shapely.get_type_id(arr[bad][0])!r} type id); read them with geodefect.io.vector.read_lines"
        )
    return arr[~shapely.is_empty(arr)]


def _split_segments(lines: np.ndarray) -> np.ndarray:
    """Two-point LineStrings of every line, in input order; zero-length segments dropped."""
    if len(lines) == 0:
        return np.empty(0, dtype=object)
    coords, index = shapely.get_coordinates(lines, return_index=True)
    same_line = index[1:] == index[:-1]
    starts, ends = coords[:-1][same_line], coords[1:][same_line]
    keep = np.any(starts != ends, axis=1)
    return shapely.linestrings(np.stack([starts[keep], ends[keep]], axis=1))


def _metres_per_unit(crs) -> float:
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return float(factor or 1.0)


def _buffer_metric(segments: np.ndarray, crs, buffer_m: float) -> np.ndarray:
    """Buffer segments by ``buffer_m`` metres; for a geographic CRS, via a local UTM zone."""
    if len(segments) == 0:
        return segments
    if not crs.is_geographic:
        return shapely.buffer(segments, buffer_m / _metres_per_unit(crs), quad_segs=_QUAD_SEGS)
    from pyproj import Transformer

    utm = _local_utm(segments, crs)
    fwd = Transformer.from_crs(crs, utm, always_xy=True)
    back = Transformer.from_crs(utm, crs, always_xy=True)
    projected = shapely.transform(segments, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    buffered = shapely.buffer(projected, buffer_m, quad_segs=_QUAD_SEGS)
    log.debug("buffered %d segments by %.2f m in %s", len(segments), buffer_m, utm.name)
    return shapely.transform(buffered, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))


def _local_utm(segments: np.ndarray, crs):
    """The UTM CRS of the segments' centre (on WGS84)."""
    from pyproj import CRS, Transformer
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    minx, miny, maxx, maxy = shapely.total_bounds(segments)
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform((minx + maxx) / 2, (miny + maxy) / 2)
    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    if not infos:
        raise InputError(f"no UTM zone found for lon/lat ({lon:.4f}, {lat:.4f}) to measure `buffer_m` in")
    return CRS.from_epsg(infos[0].code)
