"""``geodefect evaluate`` for roads: a prediction (roads.gpkg or road_mask.tif) against centerlines.

Composes file reading, reprojection and rasterisation around the array/graph metrics in
``geodefect.evaluation`` (pixel IoU/F1, relaxed precision/recall/F1, APLS).

Grids and CRSs:

* ``road_mask.tif``: the metrics use the mask's own grid (nonzero = road, its nodata =
  not evaluated); truth lines are buffered in metres in a metric CRS (the raster's if
  projected, else the truth's UTM zone) and rasterised onto that grid. The mask is
  vectorised with the default :class:`VectorizeParams`; its lines are the predicted
  centerlines (relaxed scores) and graph (APLS).
* ``roads.gpkg`` (layer ``roads``, or any line file): both sides are buffered by
  ``buffer_m`` and rasterised on a ``grid_m`` grid in the metric CRS over the AOI (or the
  union of both extents).

The AOI (any CRS) restricts every metric; with a raster prediction the truth is also clipped
to the raster's data footprint (what the model could see: pixels that are not nodata), so a
prediction made with ``infer --aoi`` scores the same with or without ``--aoi`` here.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodefect.errors import InputError, require_file

log = logging.getLogger(__name__)

_RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2"}


@dataclass(frozen=True)
class RoadEvalConfig:
    """Options of road evaluation.

    Attributes:
        buffer_m: half-width in metres of the buffered truth (pixel IoU/F1) and the tolerance
            of relaxed precision/recall.
        apls_snap_m: APLS node snapping distance (SpaceNet: 4 m).
        apls_control_spacing_m: APLS control point spacing along edges (SpaceNet: 50 m).
        apls_min_path_length_m: node pairs with a shorter truth path are not scored (as CosmiQ).
        grid_m: pixel size of the evaluation grid when the prediction is a vector file.
        max_grid_px: the grid is coarsened so that it holds at most this many pixels.
    """

    buffer_m: float = 2.0
    apls_snap_m: float = 4.0
    apls_control_spacing_m: float = 50.0
    apls_min_path_length_m: float = 10.0
    grid_m: float = 0.5
    max_grid_px: int = 64_000_000

    def __post_init__(self) -> None:
        for name in ("buffer_m", "apls_snap_m", "apls_control_spacing_m", "grid_m"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"`{name}` must be a number > 0 (metres), got {value!r}")


def evaluate(
    pred: str | Path,
    truth: str | Path,
    *,
    aoi: str | Path | None = None,
    json_out: str | Path | None = None,
    config_file: str | Path | None = None,
    overrides: dict | None = None,
    overwrite: bool = False,
    errors_out: str | Path | None = None,
) -> dict:
    """Evaluate a road prediction against centerlines; optionally write the result as JSON
    and the missed / invented roads as a styled GeoPackage (``errors_out``, for QGIS).

    Returns:
        dict with ``pixel`` (iou, f1, precision, recall), ``relaxed`` (precision, recall, f1),
        ``apls`` (apls, truth_to_pred, pred_to_truth, pairs), ``km`` (truth, pred) and inputs.
    """
    from geodefect.config import config_to_dict, resolve_config
    from geodefect.io.atomic import check_output_free, write_text_atomic

    cfg = resolve_config(RoadEvalConfig, config_file, overrides)
    for out in (json_out, errors_out):
        if out is not None:
            check_output_free(out, overwrite=overwrite)
    require_file(pred, what="prediction")
    scene = _load_scene(Path(pred), Path(truth), aoi, cfg)
    result = {
        "pred": str(pred),
        "truth": str(truth),
        "aoi": str(aoi) if aoi is not None else None,
        "config": config_to_dict(cfg),
        **score_scene(scene, cfg),
    }
    if errors_out is not None:
        result["errors"] = write_errors(scene, cfg, errors_out)
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
    return result


def write_errors(scene: _Scene, cfg: RoadEvalConfig, path) -> dict:
    """Write the scene's missed and invented roads to ``path``; return their counts and km."""
    from geodefect.evaluation.errors import road_errors
    from geodefect.io.gpkg import write_road_errors

    errors = road_errors(scene.truth_lines_m, scene.pred_lines_m, buffer_m=cfg.buffer_m, crs=scene.crs)
    write_road_errors(path, errors)
    km = errors.groupby("error")["length_m"].sum() / 1000.0
    return {"path": str(path), "features": len(errors), **{f"{k}_km": float(v) for k, v in km.items()}}


@dataclass
class _Scene:
    """Everything the metrics need, on one grid and in one metric CRS."""

    pred_mask: np.ndarray
    pred_lines_px: np.ndarray
    truth_mask: np.ndarray
    truth_lines_px: np.ndarray
    valid: np.ndarray | None
    pixel_size_m: tuple[float, float]
    truth_lines_m: list
    pred_lines_m: list
    crs: object = None  # the metric CRS of the *_lines_m


def score_scene(scene: _Scene, cfg: RoadEvalConfig) -> dict:
    from geodefect.evaluation.apls import apls, lines_to_graph
    from geodefect.evaluation.roads import pixel_scores, relaxed_scores

    pixel = pixel_scores(scene.pred_mask, scene.truth_mask, valid=scene.valid)
    relaxed = relaxed_scores(
        scene.pred_lines_px, scene.truth_lines_px,
        buffer_m=cfg.buffer_m, pixel_size_m=scene.pixel_size_m, valid=scene.valid,
    )
    apls_scores = apls(
        lines_to_graph(scene.truth_lines_m), lines_to_graph(scene.pred_lines_m),
        control_spacing_m=cfg.apls_control_spacing_m, snap_m=cfg.apls_snap_m,
        min_path_length_m=cfg.apls_min_path_length_m,
    )
    return {
        "pixel": pixel,
        "relaxed": relaxed,
        "apls": apls_scores,
        "km": {
            "truth": sum(g.length for g in scene.truth_lines_m) / 1000.0,
            "pred": sum(g.length for g in scene.pred_lines_m) / 1000.0,
        },
    }


def format_road_metrics(result: dict) -> str:
    """A small fixed-width table of the headline metrics (for stdout)."""
    px, rx, ap, km = result["pixel"], result["relaxed"], result["apls"], result["km"]
    buffer_m = result["config"]["buffer_m"]
    rows = [
        ("pixel IoU", px["iou"]),
        ("pixel F1", px["f1"]),
        (f"relaxed precision ({buffer_m:g} m)", rx["precision"]),
        (f"relaxed recall ({buffer_m:g} m)", rx["recall"]),
        (f"relaxed F1 ({buffer_m:g} m)", rx["f1"]),
        ("APLS", ap["apls"]),
        ("  truth -> pred", ap["truth_to_pred"]),
        ("  pred -> truth", ap["pred_to_truth"]),
    ]
    lines = [f"{'metric':<28} {'value':>8}"]
    lines += [f"{name:<28} {value:>8.4f}" for name, value in rows]
    lines.append(f"{'road km truth / pred':<28} {km['truth']:>8.3f} / {km['pred']:.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- loading


def _load_scene(pred: Path, truth: Path, aoi, cfg: RoadEvalConfig) -> _Scene:
    if pred.suffix.lower() in _RASTER_SUFFIXES:
        return _raster_scene(pred, truth, aoi, cfg)
    return _vector_scene(pred, truth, aoi, cfg)


def _metric_crs(crs, truth_gdf):
    """``crs`` if it is projected in metres, else the UTM zone of the truth."""
    from pyproj import CRS

    crs = CRS.from_user_input(crs)
    if crs.is_projected and crs.axis_info and crs.axis_info[0].unit_conversion_factor == 1.0:
        return crs
    return truth_gdf.estimate_utm_crs()


def _raster_scene(pred: Path, truth: Path, aoi, cfg: RoadEvalConfig) -> _Scene:
    from rasterio.features import rasterize

    from geodefect.graph.vectorize import pixel_size_m, vectorize_road_mask
    from geodefect.io.raster import open_raster
    from geodefect.io.vector import read_aoi, read_lines

    with open_raster(pred) as ds:
        data = ds.read(1)
        transform, crs, nodata = ds.transform, ds.crs, ds.nodata
    valid = data != nodata if nodata is not None else np.ones(data.shape, bool)
    mask = _road_pixels(data) & valid
    footprint = data_footprint(valid, transform)  # what the model saw: its nodata (outside its AOI) is not
    if footprint.is_empty:
        raise InputError(f"prediction raster {str(pred)!r} holds no data (every pixel is nodata); check the file")
    truth_gdf = read_lines(truth, what="truth centerline file")
    metric = _metric_crs(crs, truth_gdf)
    region = _to_crs(footprint, crs, metric)
    if aoi is not None:
        aoi_metric = read_aoi(aoi, to_crs=metric)
        region = region.intersection(aoi_metric)
        valid &= rasterize([(_to_crs(aoi_metric, metric, crs), 1)], out_shape=data.shape, transform=transform, dtype="uint8").astype(bool)
    if region.is_empty:
        raise InputError(f"the AOI {str(aoi)!r} does not overlap the prediction raster {str(pred)!r}; check both files")
    truth_m = _clip_lines(truth_gdf.to_crs(metric).geometry.values, region)
    _require_truth(truth_m, truth, "the prediction raster" + (" and the AOI" if aoi is not None else ""))
    truth_mask, truth_px = _rasterize_truth(truth_m, metric, crs, transform, data.shape, cfg.buffer_m)
    # NaN where the raster has no data: roads cut there end in boundary nodes, not dead ends
    mask &= valid
    net = vectorize_road_mask(mask, transform, crs=crs, prob=np.where(valid, mask, np.float32(np.nan)).astype(np.float32))
    roads, _ = net.to_geodataframes()
    pred_m = _clip_lines(roads.to_crs(metric).geometry.values, region) if len(roads) else []
    return _Scene(
        pred_mask=mask, pred_lines_px=_rasterize_lines(roads.geometry.values, transform, data.shape),
        truth_mask=truth_mask, truth_lines_px=truth_px,
        valid=valid, pixel_size_m=pixel_size_m(transform, crs, data.shape),
        truth_lines_m=truth_m, pred_lines_m=pred_m, crs=metric,
    )


def data_footprint(valid: np.ndarray, transform):
    """Polygon (raster CRS) of the pixels that hold data: the whole raster, or the AOI it was predicted in.

    The truth is clipped to it, so a prediction made with ``--aoi`` scores the same whether
    ``evaluate`` is given that AOI or not.
    """
    import shapely
    from rasterio.features import shapes
    from rasterio.transform import array_bounds
    from shapely.geometry import box, shape

    if valid.all():
        return box(*array_bounds(*valid.shape, transform))
    polygons = [shape(geom) for geom, _ in shapes(valid.astype(np.uint8), mask=valid, transform=transform)]
    return shapely.union_all(polygons) if polygons else shapely.Polygon()


def _road_pixels(data: np.ndarray) -> np.ndarray:
    """Road pixels of a mask (0/1, or 0/255) or of a probability raster.

    Values above 1 in a uint8 raster other than 255 mean ``road_prob.tif`` (probability x 254):
    thresholded at 0.5 (127). Float rasters are thresholded at 0.5.
    """
    if np.issubdtype(data.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            return data >= 0.5
    values = np.unique(data[:: max(data.shape[0] // 256, 1), :: max(data.shape[1] // 256, 1)])
    if set(values.tolist()) <= {0, 1, 255}:
        return data > 0
    return data >= 127


def _vector_scene(pred: Path, truth: Path, aoi, cfg: RoadEvalConfig) -> _Scene:
    from rasterio.features import rasterize

    from geodefect.io.vector import read_aoi, read_lines

    pred_gdf = _read_pred_lines(pred)
    truth_gdf = read_lines(truth, what="truth centerline file")
    metric = _metric_crs(pred_gdf.crs, truth_gdf)
    truth_m = list(truth_gdf.to_crs(metric).geometry.values)
    pred_m = list(pred_gdf.to_crs(metric).geometry.values) if len(pred_gdf) else []
    region = read_aoi(aoi, to_crs=metric) if aoi is not None else None
    if region is not None:
        truth_m, pred_m = _clip_lines(truth_m, region), _clip_lines(pred_m, region)
        _require_truth(truth_m, truth, "the AOI")
    transform, shape = _vector_grid(truth_m + pred_m, region, cfg)
    truth_mask, truth_px = _rasterize_truth(truth_m, metric, metric, transform, shape, cfg.buffer_m)
    pred_mask, pred_px = _rasterize_truth(pred_m, metric, metric, transform, shape, cfg.buffer_m)
    valid = None
    if region is not None:
        valid = rasterize([(region, 1)], out_shape=shape, transform=transform, dtype="uint8").astype(bool)
    size = abs(transform.a)
    return _Scene(
        pred_mask=pred_mask, pred_lines_px=pred_px, truth_mask=truth_mask, truth_lines_px=truth_px,
        valid=valid, pixel_size_m=(size, size), truth_lines_m=truth_m, pred_lines_m=pred_m, crs=metric,
    )


def _require_truth(truth_m: list, truth: Path, where: str) -> None:
    if not truth_m:
        raise InputError(
            f"truth centerline file {str(truth)!r} has no line inside {where}; nothing to score "
            "against: check that the files cover the same place (and their CRS)"
        )


def _read_pred_lines(pred: Path):
    """The ``roads`` layer of a GeoPackage written by geodefect, or the lines of any vector file."""
    import pyogrio

    from geodefect.io.vector import read_lines

    try:
        layers = [name for name, _ in pyogrio.list_layers(pred)]
    except Exception:  # noqa: BLE001 - read_lines below gives the user-facing error
        layers = []
    from geodefect.io.gpkg import ROADS_LAYER

    if ROADS_LAYER in layers:
        import geopandas as gpd

        gdf = gpd.read_file(pred, layer=ROADS_LAYER, engine="pyogrio")
        if gdf.crs is None:
            raise InputError(f"prediction {str(pred)!r} has no CRS; write it with a CRS (geodefect infer does)")
        return gdf[~gdf.geometry.isna() & ~gdf.geometry.is_empty].explode(ignore_index=True)
    return read_lines(pred, what="prediction")


def _vector_grid(lines_m: list, region, cfg: RoadEvalConfig):
    """North-up grid (transform, shape) in the metric CRS over the region or the lines (+ buffer)."""
    import shapely
    from affine import Affine

    if region is not None:
        minx, miny, maxx, maxy = region.bounds
    elif lines_m:
        minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(lines_m, dtype=object))
    else:
        raise InputError("nothing to evaluate: the truth and the prediction hold no lines")
    pad = cfg.buffer_m + 2 * cfg.grid_m
    minx, miny, maxx, maxy = minx - pad, miny - pad, maxx + pad, maxy + pad
    size = max(cfg.grid_m, math.sqrt((maxx - minx) * (maxy - miny) / cfg.max_grid_px))
    if size > cfg.grid_m:
        log.warning("evaluation grid coarsened to %.2f m so that it holds at most %d pixels", size, cfg.max_grid_px)
    width, height = math.ceil((maxx - minx) / size), math.ceil((maxy - miny) / size)
    return Affine(size, 0, minx, 0, -size, maxy), (height, width)


def _rasterize_truth(lines_m: list, metric, grid_crs, transform, shape, buffer_m: float):
    """(buffered mask, centerline pixels) of metric-CRS lines on a grid in ``grid_crs``."""
    import shapely
    from rasterio.features import rasterize

    if not lines_m:
        return np.zeros(shape, bool), np.zeros(shape, bool)
    lines = np.asarray(lines_m, dtype=object)
    buffered = _to_crs(shapely.buffer(lines, buffer_m), metric, grid_crs)
    centre = _to_crs(lines, metric, grid_crs)
    mask = rasterize([(g, 1) for g in buffered], out_shape=shape, transform=transform, dtype="uint8")
    px = rasterize([(g, 1) for g in centre], out_shape=shape, transform=transform, dtype="uint8", all_touched=True)
    return mask.astype(bool), px.astype(bool)


def _rasterize_lines(lines, transform, shape) -> np.ndarray:
    """(H, W) bool: pixels touched by the lines (already in the grid's CRS)."""
    from rasterio.features import rasterize

    if len(lines) == 0:
        return np.zeros(shape, bool)
    return rasterize([(g, 1) for g in lines], out_shape=shape, transform=transform, dtype="uint8", all_touched=True).astype(bool)


def _to_crs(geom, src, dst):
    """Reproject a shapely geometry or an array of them (no-op when the CRSs are equal)."""
    import shapely
    from pyproj import CRS, Transformer

    src, dst = CRS.from_user_input(src), CRS.from_user_input(dst)
    if src == dst:
        return geom
    tr = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(geom, lambda c: np.stack(tr.transform(c[:, 0], c[:, 1]), axis=1))


def _clip_lines(lines, region) -> list:
    """Single-part lines of ``lines`` inside ``region`` (a polygon)."""
    import shapely

    if region is None:
        return list(lines)
    lines = np.asarray(list(lines), dtype=object)
    if lines.size == 0:
        return []
    parts = shapely.get_parts(shapely.intersection(lines, region))
    keep = np.isin(shapely.get_type_id(parts), (1,)) & (shapely.length(parts) > 0)
    return list(parts[keep])
