"""GeoTIFF (any GDAL raster) reading with rasterio.

* :func:`open_raster` opens a raster with one-line errors for the usual bad inputs
  (missing file, not a raster, truncated file, no CRS).
* :class:`RasterReader` is the windowed reader used by chipping and inference: it has
  the sliding engine's reader protocol (``.shape -> (C, H, W)``, ``.read(window) ->
  (C, h, w)``, padding outside the raster), selects bands, stretches non-uint8 imagery
  to uint8 with percentiles computed once from a decimated read, reports a per-window
  validity mask, and can resample to a target cell size in metres on the fly.
* :func:`pixel_size_m` works for projected and geographic CRSs (geodesic at the centre).
* Writers live in :mod:`geodefect.io.raster_write` (and :mod:`geodefect.io.chip_writer`).

Resampling (``cell_size_m``): the target grid keeps the raster's CRS, origin and extent
and changes only the pixel size. Imagery is resampled with GDAL's warper through a
:class:`rasterio.vrt.WarpedVRT`: ``bilinear`` when upsampling (cell larger than the
target), ``average`` (area-weighted, no aliasing) when downsampling by more than 1.25x.
Labels are never resampled; they are burned on the output grid.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from geodefect.errors import InputError, require_file

log = logging.getLogger(__name__)

#: percentiles of the default stretch of non-uint8 imagery to uint8
STRETCH_PERCENTILES = (2.0, 98.0)
#: longest side (px) of the decimated read used to compute stretch percentiles
STRETCH_SAMPLE_PX = 1024


# ----------------------------------------------------------------------------- opening


def open_raster(path: str | os.PathLike, *, require_crs: bool = True, check_blocks: bool = True):
    """Open a raster for reading with clear errors.

    Args:
        path: any GDAL-readable raster.
        require_crs: raise if the raster has no CRS (georeferenced workflows need one).
        check_blocks: read the last block to detect truncated files (cheap: one block).

    Returns:
        An open :class:`rasterio.io.DatasetReader` (close it, or use it as a context manager).

    Raises:
        InputFileNotFoundError: missing file. InputError: not a raster, truncated, no CRS.
    """
    require_file(path, what="raster")
    p = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            ds = rasterio.open(p)
    except rasterio.errors.RasterioIOError:
        raise InputError(
            f"raster {p!r} is not a raster GDAL can read; pass a GeoTIFF (or another GDAL raster)"
        ) from None
    try:
        if check_blocks:
            check_raster_complete(ds)
        if require_crs and ds.crs is None:
            raise InputError(
                f"raster {p!r} has no CRS; set it with `gdal_edit.py -a_srs EPSG:XXXX {p}` "
                "(XXXX = the EPSG code of its coordinate system)"
            )
    except BaseException:
        ds.close()
        raise
    return ds


def check_raster_complete(ds) -> None:
    """Read the raster's last block (all bands); raise InputError if it cannot be read.

    A truncated GeoTIFF opens fine (its header is intact) but fails when the missing
    blocks are read; the last block of the last band is the one stored at the file's end.
    """
    block_h, block_w = ds.block_shapes[0]
    row0 = ((ds.height - 1) // block_h) * block_h
    col0 = ((ds.width - 1) // block_w) * block_w
    last = Window(col0, row0, ds.width - col0, ds.height - row0)
    try:
        ds.read(window=last)
    except rasterio.errors.RasterioError:
        raise InputError(
            f"raster {ds.name!r} is truncated or corrupt (its last block cannot be read); "
            "download or copy it again"
        ) from None


def parse_bands(bands: str | Sequence[int] | None) -> list[int] | None:
    """``"1,2,3"`` or ``[1, 2, 3]`` -> ``[1, 2, 3]`` (1-based band numbers); None stays None."""
    if bands is None:
        return None
    if isinstance(bands, str):
        try:
            bands = [int(b) for b in bands.replace(" ", "").split(",") if b]
        except ValueError:
            raise InputError(f"`bands` must be comma-separated band numbers like 1,2,3, got {bands!r}") from None
    out = [int(b) for b in bands]
    if not out or min(out) < 1:
        raise InputError(f"`bands` are 1-based band numbers (>= 1), got {list(bands)!r}")
    return out


def default_bands(ds) -> list[int]:
    """All bands except alpha bands (SpaceNet's RGB tiles carry a constant alpha band)."""
    from rasterio.enums import ColorInterp

    bands = [b for b in range(1, ds.count + 1) if ds.colorinterp[b - 1] != ColorInterp.alpha]
    return bands or list(range(1, ds.count + 1))


def check_bands(bands: Sequence[int], count: int, *, path: str) -> None:
    """Raise InputError if a requested 1-based band does not exist in a ``count``-band raster."""
    missing = [b for b in bands if b > count]
    if missing:
        raise InputError(
            f"`bands` {','.join(map(str, bands))} asks for band(s) {','.join(map(str, missing))} but "
            f"raster {path!r} has {count} band(s); choose bands in 1..{count}"
        )


# ----------------------------------------------------------------------------- pixel size


def pixel_size_m(crs, transform, width: int, height: int) -> tuple[float, float]:
    """Pixel size ``(x_m, y_m)`` in metres.

    Projected CRS: the transform's pixel size times the CRS's linear unit. Geographic CRS
    (e.g. SpaceNet's EPSG:4326, ~2.7e-6 degrees): geodesic length of one pixel step east
    and one step south at the raster's centre (WGS84 ellipsoid of the CRS).
    """
    if crs is None:
        raise InputError("cannot compute a pixel size in metres for a raster without CRS")
    if crs.is_geographic:
        from pyproj import CRS as ProjCRS
        from pyproj import Geod

        geod = ProjCRS.from_wkt(crs.to_wkt()).get_geod() or Geod(ellps="WGS84")
        cx, cy = transform @ (width / 2.0, height / 2.0)
        ex, ey = transform @ (width / 2.0 + 1, height / 2.0)
        sx, sy = transform @ (width / 2.0, height / 2.0 + 1)
        x_m = geod.inv(cx, cy, ex, ey)[2]
        y_m = geod.inv(cx, cy, sx, sy)[2]
        return float(x_m), float(y_m)
    factor = crs.linear_units_factor[1] if crs.linear_units else 1.0
    x_m = math.hypot(transform.a, transform.d) * factor
    y_m = math.hypot(transform.b, transform.e) * factor
    return float(x_m), float(y_m)


def resampled_grid(transform, width: int, height: int, *, scale_x: float, scale_y: float):
    """Grid of the same extent and origin with pixels ``scale_x`` / ``scale_y`` times larger.

    The pixel count is rounded, so the pixel size is adjusted slightly to keep the extent.

    Returns:
        ``(transform, width, height)`` of the new grid.
    """
    from rasterio.transform import Affine

    new_w = max(1, int(round(width / scale_x)))
    new_h = max(1, int(round(height / scale_y)))
    sx = width / new_w
    sy = height / new_h
    return transform * Affine.scale(sx, sy), new_w, new_h


# ----------------------------------------------------------------------------- stretch


def compute_stretch(ds, bands: Sequence[int], *, percentiles=STRETCH_PERCENTILES) -> np.ndarray:
    """Per-band ``(lo, hi)`` percentiles from a decimated read (overviews when present).

    Memory stays flat: at most ``STRETCH_SAMPLE_PX`` px on the longest side are read.
    Nodata pixels (dataset mask) are excluded.

    Returns:
        (C, 2) float64 array of ``lo, hi`` per selected band.
    """
    factor = max(1.0, max(ds.width, ds.height) / STRETCH_SAMPLE_PX)
    if factor <= 2.0:  # small rasters: a plain full read (GDAL's decimated read of a pan-sharpened
        # VRT inside a rasterio.Env was measured at 124-150 s for a 1300 px tile, the full read 0.06 s)
        data = ds.read(list(bands))
        valid = ds.dataset_mask() > 0
    else:
        h, w = max(1, int(ds.height / factor)), max(1, int(ds.width / factor))
        data = ds.read(list(bands), out_shape=(len(bands), h, w), resampling=Resampling.nearest)
        valid = ds.dataset_mask(out_shape=(h, w), resampling=Resampling.nearest) > 0
    out = np.zeros((len(bands), 2))
    for i, band in enumerate(data):
        vals = band[valid] if valid.any() else band.ravel()
        lo, hi = np.percentile(vals, percentiles) if vals.size else (0.0, 1.0)
        out[i] = (lo, hi if hi > lo else lo + 1.0)
    return out


def apply_stretch(data: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Linear stretch ``(C, h, w)`` any dtype -> uint8 with per-band ``limits`` (C, 2)."""
    lo = limits[:, 0].reshape(-1, 1, 1)
    hi = limits[:, 1].reshape(-1, 1, 1)
    out = (data.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(out, 0, 255, out=out).round().astype(np.uint8)


# ----------------------------------------------------------------------------- reader


class RasterReader:
    """Windowed reader of a GDAL raster with the sliding engine's reader protocol.

    Args:
        path: the raster.
        bands: 1-based bands to read (default: all but alpha bands).
        stretch: True: percentile-stretch to uint8; False: clip values to 0..255 (uint8);
            None (default): stretch only when the raster is not uint8. ``"raw"`` keeps
            the native dtype.
        cell_size_m: resample on the fly to this pixel size in metres (see module doc).
        require_crs: raise if the raster has no CRS.

    Attributes:
        shape: ``(C, H, W)`` of the (possibly resampled) grid.
        transform, crs: georeferencing of that grid.
        pixel_size_m: ``(x_m, y_m)`` of that grid.
    """

    def __init__(self, path, *, bands=None, stretch: bool | str | None = None,
                 cell_size_m: float | None = None, require_crs: bool = True) -> None:
        self.path = str(path)
        self._args = {"bands": bands, "stretch": stretch, "cell_size_m": cell_size_m,
                      "require_crs": require_crs}
        self._ds = open_raster(path, require_crs=require_crs)
        self._vrt = None
        try:
            self._setup(parse_bands(bands), stretch, cell_size_m)
        except BaseException:
            self.close()
            raise

    def _setup(self, bands, stretch, cell_size_m) -> None:
        ds = self._ds
        self.bands = bands or default_bands(ds)
        check_bands(self.bands, ds.count, path=self.path)
        self.source_dtype = ds.dtypes[self.bands[0] - 1]
        self.crs = ds.crs
        src_px = pixel_size_m(ds.crs, ds.transform, ds.width, ds.height) if ds.crs else (1.0, 1.0)
        self.source_pixel_size_m = src_px
        self._src = ds
        if cell_size_m is not None:
            self._open_resampled(float(cell_size_m), src_px)
        self.transform = self._src.transform
        self.shape = (len(self.bands), self._src.height, self._src.width)
        self.pixel_size_m = (
            pixel_size_m(self.crs, self.transform, self.shape[2], self.shape[1]) if self.crs else src_px
        )
        self._limits = None  # computed on the first read that needs them
        self.stretch_mode = self._stretch_mode(stretch)
        self.dtype = np.dtype(self.source_dtype) if self.stretch_mode == "raw" else np.dtype("uint8")

    def _stretch_mode(self, stretch) -> str:
        if stretch == "raw":
            return "raw"
        if stretch is None:
            return "stretch" if self.source_dtype != "uint8" else "none"
        if stretch:
            return "stretch"
        if self.source_dtype != "uint8":
            log.warning("%s is %s and --no-stretch was given: values are clipped to 0..255",
                        self.path, self.source_dtype)
            return "clip"
        return "none"

    def _open_resampled(self, cell_size_m: float, src_px) -> None:
        from rasterio.vrt import WarpedVRT

        if not cell_size_m > 0:
            raise InputError(f"`cell_size_m` must be > 0 metres, got {cell_size_m!r}")
        # per axis: in a geographic CRS a degree of longitude is shorter than one of
        # latitude, so square pixels in metres need different scales in x and y
        scale_x, scale_y = cell_size_m / src_px[0], cell_size_m / src_px[1]
        transform, width, height = resampled_grid(self._ds.transform, self._ds.width,
                                                  self._ds.height, scale_x=scale_x, scale_y=scale_y)
        method = Resampling.average if min(scale_x, scale_y) > 1.25 else Resampling.bilinear
        self.resampling = method.name
        self._vrt = WarpedVRT(self._ds, crs=self._ds.crs, transform=transform, width=width,
                              height=height, resampling=method)
        self._src = self._vrt

    # -- protocol
    def read(self, window: Window) -> np.ndarray:
        """``(C, h, w)`` pixels of ``window`` (uint8 unless ``stretch="raw"``); 0 outside the raster."""
        data = self._read_padded(window, self.bands, fill=0)
        if self.stretch_mode == "stretch":
            return apply_stretch(data, self.stretch_limits)
        if self.stretch_mode == "clip":
            return np.clip(data, 0, 255).astype(np.uint8)
        return data

    @property
    def stretch_limits(self) -> np.ndarray | None:
        """(C, 2) percentile ``lo, hi`` per band when stretching, else None."""
        if self.stretch_mode == "stretch" and self._limits is None:
            self._limits = compute_stretch(self._ds, self.bands)
        return self._limits

    def read_valid_mask(self, window: Window) -> np.ndarray:
        """``(h, w)`` bool: True where the pixel holds data (dataset mask; False outside)."""
        if self._all_valid:
            return self._inside_mask(window)
        mask = self._read_padded(window, None, fill=0)
        return mask[0] > 0

    @functools.cached_property
    def _all_valid(self) -> bool:
        """True when the raster has no nodata, mask band or alpha (every pixel is data)."""
        from rasterio.enums import MaskFlags

        if self._vrt is not None:
            return False
        return all(flags == [MaskFlags.all_valid] for flags in self._ds.mask_flag_enums)

    def _inside_mask(self, window: Window) -> np.ndarray:
        """``(h, w)`` bool: True for the part of ``window`` inside the raster."""
        h, w = int(window.height), int(window.width)
        r0, c0 = int(window.row_off), int(window.col_off)
        out = np.zeros((h, w), bool)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, self.shape[1]), min(c0 + w, self.shape[2])
        if rr1 > rr0 and cc1 > cc0:
            out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = True
        return out

    def _read_padded(self, window: Window, bands, *, fill) -> np.ndarray:
        """Read ``bands`` (None: the dataset mask as one band) of a window, padded outside."""
        src = self._src
        h, w = int(window.height), int(window.width)
        r0, c0 = int(window.row_off), int(window.col_off)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, src.height), min(c0 + w, src.width)
        if (rr0, cc0, rr1, cc1) == (r0, c0, r0 + h, c0 + w):
            return self._read_inside(window, bands)
        count = 1 if bands is None else len(bands)
        dtype = np.uint8 if bands is None else np.dtype(src.dtypes[bands[0] - 1])
        out = np.full((count, h, w), fill, dtype=dtype)
        if rr1 > rr0 and cc1 > cc0:
            inner = Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
            out[:, rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = self._read_inside(inner, bands)
        return out

    def _read_inside(self, window: Window, bands) -> np.ndarray:
        try:
            if bands is None:
                return self._src.dataset_mask(window=window)[None]
            return self._src.read(bands, window=window)
        except rasterio.errors.RasterioError:
            raise InputError(
                f"raster {self.path!r} cannot be read at rows {int(window.row_off)}.."
                f"{int(window.row_off + window.height)}, columns {int(window.col_off)}.."
                f"{int(window.col_off + window.width)} (corrupt block); copy the file again"
            ) from None

    def reopen(self) -> RasterReader:
        """Another reader of the same raster and settings, with its own GDAL handle.

        GDAL datasets must not be shared between threads: give each thread its own.
        Stretch limits are shared, so every thread stretches identically.
        """
        other = RasterReader(self.path, **self._args)
        other._limits = self.stretch_limits
        return other

    def window_transform(self, window: Window):
        """Affine transform of a window of this reader's grid."""
        from rasterio.windows import transform as win_transform

        return win_transform(window, self.transform)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        from rasterio.transform import array_bounds

        left_bottom_right_top = array_bounds(self.shape[1], self.shape[2], self.transform)
        w, s, e, n = left_bottom_right_top[0], left_bottom_right_top[1], left_bottom_right_top[2], left_bottom_right_top[3]
        return (min(w, e), min(s, n), max(w, e), max(s, n))

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._ds.close()

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- writing


class ThreadReaders:
    """One :class:`RasterReader` per thread (GDAL handles are not thread-safe): ``get()`` returns
    the main reader in the thread that made this object and a :meth:`RasterReader.reopen` copy
    in any other; ``close()`` closes the copies."""

    def __init__(self, main) -> None:
        import threading

        self._main, self._main_thread = main, threading.get_ident()
        self._local = threading.local()
        self._opened: list = []

    def get(self):
        import threading

        if threading.get_ident() == self._main_thread:
            return self._main
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self._main.reopen()
            self._opened.append(reader)
        return reader

    def close(self) -> None:
        for reader in self._opened:
            reader.close()
