"""Fast writer of small north-up GeoTIFF chips (thousands per run).

Why not plain rasterio: creating a GeoTIFF through GDAL costs ~1–2 ms of CPU per file,
about a third of it converting the CRS to GeoTIFF keys again for every file, and a chip
export writes three files per window (image, road mask, orientation).

What this does by hand (measured ~10x less CPU per file than GDAL or tifffile):

* the GeoTIFF keys of the CRS (tags 34735–34737) are made ONCE by GDAL (a 1×1 template
  written with rasterio into memory, parsed with :mod:`tifffile`);
* for each (shape, dtype, pixel size) a complete classic little-endian TIFF header is
  built once: one IFD, uncompressed, one strip per band (planar/band-sequential like
  GDAL's default ``INTERLEAVE=BAND``), ``ModelPixelScale``, ``ModelTiepoint``
  (PixelIsArea, like GDAL) and the GeoTIFF keys, image data right after the header;
* each chip copies that header, patches the tiepoint (the window's origin) and writes
  header + pixels with one ``open``.

GDAL, rasterio and QGIS read these files exactly like GDAL's own (tests compare CRS,
transform and pixels). Rotated or sheared transforms fall back to rasterio.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

_GEO_TAGS = (34735, 34736, 34737)
# TIFF field types: SHORT 3, LONG 4, DOUBLE 12, ASCII 2
_TYPE_FMT = {3: "H", 4: "I", 12: "d", 2: "s"}
_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}


class ChipWriter:
    """Write ``(C, H, W)`` arrays as GeoTIFFs sharing one CRS.

    Args:
        crs: a :class:`rasterio.crs.CRS` (or anything rasterio accepts).
    """

    def __init__(self, crs) -> None:
        from rasterio.crs import CRS

        self.crs = CRS.from_user_input(crs) if crs is not None else None
        self._geo_tags = _crs_geotiff_tags(self.crs) if self.crs is not None else []
        self._headers: dict[tuple, tuple[bytes, int]] = {}

    def write(self, path: str | Path, array: np.ndarray, *, transform, bilevel: bool = False) -> None:
        """Write ``array`` ((C, H, W) or (H, W), any numeric dtype) with ``transform``.

        ``bilevel=True`` stores a 0/1 ``uint8`` array with 1 bit per pixel (TIFF
        ``BitsPerSample=1``, rows padded to whole bytes; GDAL's ``NBITS=1``): GDAL, rasterio and
        QGIS read it back as the same ``uint8`` 0/1 array, from an 8× smaller file.
        """
        arr = array[None] if array.ndim == 2 else array
        if transform.b != 0 or transform.d != 0 or transform.e >= 0 or self.crs is None:
            from geodefect.io.raster_write import write_geotiff

            write_geotiff(path, arr, transform=transform, crs=self.crs, **({"nbits": 1} if bilevel else {}))
            return
        if bilevel:
            if arr.dtype != np.uint8:
                raise ValueError(f"bilevel chips must be uint8 0/1, got {arr.dtype}")
            data = np.packbits(arr, axis=-1)  # MSB first (TIFF FillOrder 1); nonzero -> 1
        else:
            data = arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        key = (arr.shape, arr.dtype.str, bilevel, float(transform.a), float(-transform.e))
        if key not in self._headers:
            self._headers[key] = _build_header(arr.shape, arr.dtype, key[3], key[4], self._geo_tags,
                                               bits=1 if bilevel else None)
        template, tie_at = self._headers[key]
        header = bytearray(template)
        struct.pack_into("<6d", header, tie_at, 0.0, 0.0, 0.0, float(transform.c), float(transform.f), 0.0)
        with open(path, "wb") as f:
            f.write(header)
            f.write(memoryview(data).cast("B"))


def _build_header(shape, dtype: np.dtype, scale_x: float, scale_y: float, geo_tags,
                  bits: int | None = None) -> tuple[bytes, int]:
    """Header bytes of a one-IFD, one-strip-per-band TIFF, and the tiepoint's byte offset.

    ``bits``: bits per sample when packed below the dtype's size (1: rows padded to bytes).
    """
    count, height, width = shape
    n_bits = bits or dtype.itemsize * 8
    band_bytes = height * ((width * n_bits + 7) // 8)
    bits = [n_bits] * count
    fmt = [_SAMPLE_FORMAT[dtype.kind]] * count
    entries = [
        (256, 4, [width]), (257, 4, [height]), (258, 3, bits), (259, 3, [1]), (262, 3, [1]),
        (273, 4, [0] * count), (277, 3, [count]), (278, 4, [height]), (279, 4, [band_bytes] * count),
        (284, 3, [2 if count > 1 else 1]),
    ]
    if count > 1:
        entries.append((338, 3, [0] * (count - 1)))  # ExtraSamples: unspecified
    entries += [(339, 3, fmt), (33550, 12, [scale_x, scale_y, 0.0]), (33922, 12, [0.0] * 6)]
    entries += [(code, dtype_, list(v) if not isinstance(v, str) else v) for code, dtype_, _, v, _ in geo_tags]
    entries.sort(key=lambda e: e[0])
    # values longer than 4 bytes live after the IFD; their sizes do not depend on the values
    first_data = 8 + 2 + 12 * len(entries) + 4
    sizes = [_padded_len(_pack(t, v)) for _, t, v in entries]
    data_start = first_data + sum(n for n in sizes if n > 4)
    values_of = {273: [data_start + i * band_bytes for i in range(count)]}
    ifd, extra, offset, tie_at = bytearray(), bytearray(), first_data, 0
    for code, type_, values in entries:
        blob = _pack(type_, values_of.get(code, values))
        n = len(blob) if type_ == 2 else len(values)
        if len(blob) <= 4:
            ifd += struct.pack("<HHI", code, type_, n) + blob.ljust(4, b"\0")
            continue
        ifd += struct.pack("<HHII", code, type_, n, offset)
        tie_at = offset if code == 33922 else tie_at
        extra += blob.ljust(_padded_len(blob), b"\0")
        offset += _padded_len(blob)
    header = struct.pack("<2sHIH", b"II", 42, 8, len(entries)) + ifd + struct.pack("<I", 0) + extra
    return bytes(header), tie_at


def _padded_len(blob: bytes) -> int:
    """Values after the IFD start on word boundaries (TIFF 6.0)."""
    return len(blob) + (len(blob) % 2)


def _pack(type_: int, values) -> bytes:
    if type_ == 2:
        text = values if isinstance(values, str) else "".join(values)
        return text.encode("ascii") + b"\0"
    return struct.pack(f"<{len(values)}{_TYPE_FMT[type_]}", *values)


def _crs_geotiff_tags(crs) -> list[tuple]:
    """GeoTIFF key tags of ``crs`` as ``(code, type, count, value, False)``, made by GDAL once."""
    import tifffile
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=1, height=1, count=1, dtype="uint8", crs=crs,
                      transform=from_origin(0, 1, 1, 1)) as dst:
            dst.write(np.zeros((1, 1, 1), np.uint8))
        blob = mem.read()
    with tifffile.TiffFile(io.BytesIO(blob)) as tif:
        page = tif.pages[0]
        return [
            (code, page.tags[code].dtype, page.tags[code].count, page.tags[code].value, False)
            for code in _GEO_TAGS
            if code in page.tags
        ]
