"""Where a road prediction fails: missed truth roads and predicted roads with no truth, as lines.

An analyst opens these in QGIS over the imagery (``geodefect evaluate --errors errors.gpkg``,
written by :func:`geodefect.io.gpkg.write_road_errors`). No file I/O here.

* ``false_negative``: the parts of truth centerlines farther than ``buffer_m`` from every
  predicted line (roads the model missed);
* ``false_positive``: the parts of predicted lines farther than ``buffer_m`` from every truth
  line (roads the model invented, or drew off the road).

The same tolerance as the relaxed precision/recall, measured on the lines rather than on
rasterised pixels; pieces shorter than ``min_length_m`` (a line ending just beyond the other's
buffer) are left out.
"""

from __future__ import annotations

import numpy as np

#: values of the ``error`` column
FALSE_NEGATIVE = "false_negative"
FALSE_POSITIVE = "false_positive"


def road_errors(truth_lines, pred_lines, *, buffer_m: float, crs=None, min_length_m: float = 2.0):
    """Missed and invented road pieces.

    Args:
        truth_lines: iterable of shapely LineStrings in a metric CRS (metres).
        pred_lines: iterable of shapely LineStrings in the same CRS.
        buffer_m: tolerance in metres: a line within it of the other side is found.
        crs: the CRS of the lines (stored on the result).
        min_length_m: pieces shorter than this are dropped.

    Returns:
        GeoDataFrame with ``error`` (``false_negative`` | ``false_positive``), ``length_m`` and
        LineString geometry, longest first within each kind.
    """
    import geopandas as gpd
    import pandas as pd

    truth = _lines(truth_lines)
    pred = _lines(pred_lines)
    parts = [
        (FALSE_NEGATIVE, _outside(truth, pred, buffer_m, min_length_m)),
        (FALSE_POSITIVE, _outside(pred, truth, buffer_m, min_length_m)),
    ]
    kinds = np.concatenate([np.full(len(p), k, dtype=object) for k, p in parts])
    geoms = np.concatenate([p for _, p in parts])
    frame = pd.DataFrame({"error": pd.Series(kinds, dtype="string"), "length_m": _lengths(geoms)})
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    return gdf.sort_values(["error", "length_m"], ascending=[True, False], ignore_index=True)


def _lines(lines) -> np.ndarray:
    import shapely

    arr = np.asarray([g for g in lines if g is not None and not g.is_empty], dtype=object)
    return shapely.get_parts(arr) if arr.size else arr


def _outside(lines: np.ndarray, other: np.ndarray, buffer_m: float, min_length_m: float) -> np.ndarray:
    """Single-part pieces of ``lines`` outside ``other`` buffered by ``buffer_m``, at least ``min_length_m`` long."""
    import shapely

    if lines.size == 0:
        return np.zeros(0, dtype=object)
    if other.size == 0:
        pieces = lines
    else:
        zone = shapely.union_all(shapely.buffer(other, buffer_m))
        pieces = shapely.get_parts(shapely.line_merge(shapely.difference(lines, zone)))
    keep = (shapely.get_type_id(pieces) == 1) & (shapely.length(pieces) >= min_length_m)
    return pieces[keep]


def _lengths(geoms: np.ndarray) -> np.ndarray:
    import shapely

    return shapely.length(geoms).astype(np.float64) if geoms.size else np.zeros(0)
