"""Read vector files (any OGR format via pyogrio), reproject, repair and clean them.

``read_lines`` gives single-part LineStrings (multi-lines exploded, invalid ones repaired
with a logged warning, empties dropped) in a target CRS; ``read_aoi`` gives one polygonal
shapely geometry (the union of all polygons) in a target CRS.

A file without a CRS is an error with the fix (``ogr2ogr -a_srs``), except GeoJSON: RFC 7946
says GeoJSON coordinates are WGS84 lon/lat, so GDAL reads a GeoJSON without a ``crs``
member as EPSG:4326 (and coordinates outside the lon/lat range then get their own error).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import shapely

from geodefect.errors import InputError, require_file

log = logging.getLogger(__name__)

_LINE_TYPES = ("LineString", "LinearRing")
_POLYGON_TYPES = ("Polygon",)


def read_vector(path: str | os.PathLike, *, to_crs=None, layer: str | int | None = None, what: str = "vector file"):
    """Read a vector file into a GeoDataFrame, optionally reprojected.

    Args:
        path: any OGR-readable file (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, ...).
        to_crs: target CRS (anything pyproj accepts) or None to keep the file's.
        layer: layer name or index for multi-layer files (GeoPackage); default the first.
        what: how the file is named in error messages (e.g. "centerline file").

    Raises:
        InputFileNotFoundError: the path does not exist.
        InputError: not a readable vector file, no features, or no CRS.
    """
    import geopandas as gpd
    from pyogrio.errors import DataSourceError

    require_file(path, what=what)
    p = Path(path)
    if layer is not None:
        _check_layer(p, layer, what)
    try:  # on_invalid: a geometry GEOS refuses (a one-vertex line) becomes None, dropped below
        gdf = gpd.read_file(p, engine="pyogrio", layer=layer, on_invalid="ignore")
    except (DataSourceError, ValueError, OSError) as exc:
        raise InputError(
            f"{what} {str(p)!r} is not a readable vector file ({_short(exc)}); "
            "expected GeoJSON, GeoPackage, Shapefile or another OGR format"
        ) from None
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(
            f"{what} {str(p)!r} has no geometry column (a plain table); "
            "expected a vector file with geometries (GeoJSON, GeoPackage, Shapefile)"
        )
    gdf = _drop_unusable(gdf, p, what)
    if len(gdf) == 0:
        raise InputError(f"{what} {str(p)!r} has no features with a geometry; expected at least one")
    if gdf.crs is None:
        raise InputError(
            f"{what} {str(p)!r} has no CRS; set one, e.g. `ogr2ogr -a_srs EPSG:4326 fixed.gpkg {p.name}`"
        )
    _check_lonlat_range(gdf, p, what)
    if to_crs is not None:
        gdf = gdf.to_crs(to_crs)
    return gdf


def read_lines(path: str | os.PathLike, *, to_crs=None, layer: str | int | None = None,
               what: str = "centerline file"):
    """Read centerlines as single-part LineStrings in ``to_crs``.

    Multi-lines are exploded (attributes repeated), invalid geometries repaired with
    ``shapely.make_valid`` (logged as a warning), parts that are not lines (points left by
    repairing a degenerate line, polygons) dropped with a warning, empties dropped.
    Attributes are kept; the digitising direction of each line is preserved.

    Returns:
        GeoDataFrame with a LineString geometry column and a fresh 0..n-1 index.

    Raises:
        InputError: as :func:`read_vector`, or when no line remains.
    """
    gdf = read_vector(path, to_crs=to_crs, layer=layer, what=what)
    gdf = _repair(gdf, path, what)
    gdf = gdf.explode(index_parts=False, ignore_index=True)
    types = gdf.geom_type
    not_lines = ~types.isin(_LINE_TYPES)
    if not_lines.any():
        log.warning(
            "%s %s: dropped %d non-line geometries (%s); only lines are centerlines",
            what, path, int(not_lines.sum()), ", ".join(sorted(set(types[not_lines]))),
        )
        gdf = gdf[~not_lines]
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    keep = ~shapely.is_empty(geoms) & (shapely.length(geoms) > 0)
    if (~keep).any():
        log.warning("%s %s: dropped %d lines of zero length (all vertices at one point)",
                    what, path, int((~keep).sum()))
    gdf = gdf[keep].reset_index(drop=True)
    if len(gdf) == 0:
        raise InputError(f"{what} {str(path)!r} holds no LineString features; expected road centerlines")
    return gdf


def read_lines_or_empty(path: str | os.PathLike, *, to_crs=None, what: str = "centerline file"):
    """:func:`read_lines`, except that a zero-byte or feature-less file is "no roads here".

    SpaceNet ships a zero-byte GeoJSON for a tile without roads (e.g. water); such a file
    gives an empty GeoDataFrame (CRS ``to_crs``, else EPSG:4326) instead of an error.

    Returns:
        ``(lines, empty)``: the GeoDataFrame and True when the file declared no roads.
    """
    import geopandas as gpd
    import pyogrio

    require_file(path, what=what)
    empty = os.path.getsize(path) == 0
    if not empty:
        try:
            empty = pyogrio.read_info(path).get("features") == 0
        except Exception:  # noqa: BLE001 (unreadable files get read_lines' own error below)
            empty = False
    if empty:
        log.info("%s %s holds no features: no roads there (its chips are negatives)", what, path)
        return gpd.GeoDataFrame(geometry=[], crs=to_crs or "EPSG:4326"), True
    return read_lines(path, to_crs=to_crs, what=what), False


def read_aoi(path: str | os.PathLike, *, to_crs=None, layer: str | int | None = None, what: str = "AOI file"):
    """Read an area of interest as one (Multi)Polygon: the union of the file's polygons.

    Raises:
        InputError: as :func:`read_vector`, or when the file holds no polygons.
    """
    gdf = read_vector(path, to_crs=to_crs, layer=layer, what=what)
    gdf = _repair(gdf, path, what)
    parts = shapely.get_parts(np.asarray(gdf.geometry.values, dtype=object))
    polys = parts[np.isin(shapely.get_type_id(parts), (3,))]  # Polygon
    polys = polys[~shapely.is_empty(polys)]
    if len(polys) == 0:
        raise InputError(f"{what} {str(path)!r} holds no polygons; expected the area to process as a polygon")
    return shapely.union_all(polys)


def _drop_unusable(gdf, path: Path, what: str):
    """Drop missing/empty geometries (counted in a warning when GEOS refused some) and Z/M values."""
    missing = gdf.geometry.isna()
    if missing.any():
        log.warning("%s %s: dropped %d features without a usable geometry (missing, or a line "
                    "with a single vertex)", what, path, int(missing.sum()))
    gdf = gdf[~(missing | gdf.geometry.is_empty)]
    if gdf.has_z.any():  # OSM extracts carry heights; every consumer here is 2-D
        crs = gdf.crs.to_2d() if gdf.crs is not None else None  # EPSG:4979 -> 4326
        gdf = gdf.set_geometry(shapely.force_2d(np.asarray(gdf.geometry.values, dtype=object)), crs=crs)
    return gdf


def _check_layer(path: Path, layer: str | int, what: str) -> None:
    """Raise InputError naming the available layers when ``layer`` is not one of them."""
    import pyogrio

    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception:  # not a vector file: read_file reports it
        return
    ok = layer in names if isinstance(layer, str) else -len(names) <= int(layer) < len(names)
    if not ok:
        raise InputError(f"{what} {str(path)!r} has no layer {layer!r}; available: {', '.join(names)}")


def _repair(gdf, path, what: str):
    """Make invalid geometries valid (shapely.make_valid), with a warning saying how many."""
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        log.warning("%s %s: repaired %d invalid geometries with make_valid", what, path, int(invalid.sum()))
        gdf = gdf.copy()
        gdf.loc[invalid, gdf.geometry.name] = shapely.make_valid(
            np.asarray(gdf.geometry[invalid].values, dtype=object)
        )
        gdf = gdf[~gdf.geometry.is_empty]
    return gdf


def _check_lonlat_range(gdf, path: Path, what: str) -> None:
    if not gdf.crs.is_geographic:
        return
    minx, miny, maxx, maxy = gdf.total_bounds
    if minx < -180.5 or maxx > 360.5 or miny < -90.5 or maxy > 90.5:
        raise InputError(
            f"{what} {str(path)!r} is read as {gdf.crs.to_string()} lon/lat but its coordinates "
            f"({minx:.0f}, {miny:.0f}, {maxx:.0f}, {maxy:.0f}) are not degrees; its CRS is missing or "
            f"wrong: set it, e.g. `ogr2ogr -a_srs EPSG:32631 fixed.gpkg {path.name}`"
        )


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]
