"""Pan-sharpening on the fly with GDAL's own ``VRTPansharpenedDataset``.

A panchromatic raster (PAN, fine grid) and its multispectral pair (MUL, coarse grid, same
footprint) become one virtual raster on the PAN grid whose bands are the chosen MUL bands,
sharpened by GDAL (weighted Brovey; GDAL picks the pseudo-pan weights itself: equal weights
over the chosen bands; value 0 = nodata, see :data:`NODATA`). Nothing is written to disk: the VRT XML lives in GDAL's in-memory
file system (``/vsimem/geodefect-pansharpen/...``) for the life of the process, under a name
that depends only on the inputs, so every reader (also one per thread) opens the same path
with :func:`rasterio.open` or :class:`geodefect.io.raster.RasterReader`.

Band selection: 1-based numbers (``"5,3,2"``) or names. Names come from the MUL raster's band
descriptions when it has them, else from the sensor's usual order for its band count
(8 bands: WorldView-2/3 ``coastal, blue, green, yellow, red, rededge, nir1, nir2``; 4 bands:
``blue, green, red, nir``). ``"rgb"`` is a shortcut for ``red,green,blue``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from xml.sax.saxutils import escape

from geodefect.errors import InputError, require_file

#: MUL band names by band count when the file carries no band descriptions
SENSOR_BAND_NAMES = {
    8: ("coastal", "blue", "green", "yellow", "red", "rededge", "nir1", "nir2"),  # WorldView-2/3
    4: ("blue", "green", "red", "nir"),  # WorldView-4, QuickBird, GeoEye-1, Pleiades
}
#: default output bands (RGB) by MUL band count
DEFAULT_RGB = {8: [5, 3, 2], 4: [3, 2, 1]}
VSIMEM_DIR = "/vsimem/geodefect-pansharpen"
#: value of "no image" in PAN/MUL: SpaceNet (like most satellite products) fills the area outside
#: the image footprint with 0, which no 11-bit radiance takes; masked, it stays out of the stretch
#: percentiles and chips of mostly fill are skipped (``max_nodata``)
NODATA = 0

_OPEN: dict[str, object] = {}  # vsimem path -> MemoryFile kept alive for the process
_XML: dict[str, str] = {}  # vsimem path -> its VRT XML (for other processes)
_PAN: dict[str, str] = {}  # vsimem path -> the panchromatic file it was made from (for messages)


def mul_band_names(mul_path: str | os.PathLike) -> list[str]:
    """Lower-case names of the MUL raster's bands (descriptions, else the sensor order, else b1..bN)."""
    import rasterio

    with rasterio.open(mul_path) as ds:
        described = [(d or "").strip().lower() for d in ds.descriptions]
        count = ds.count
    if all(described) and len(set(described)) == count:
        return described
    return list(SENSOR_BAND_NAMES.get(count, [f"b{i}" for i in range(1, count + 1)]))


def resolve_mul_bands(spec, mul_path: str | os.PathLike) -> list[int]:
    """1-based MUL bands from ``"5,3,2"``, ``[5, 3, 2]``, ``"red,green,blue"``, ``"rgb"`` or None (RGB).

    Raises:
        InputError: an unknown name or a band number outside the raster, naming the valid ones.
    """
    names = mul_band_names(mul_path)
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "rgb"):
        spec = DEFAULT_RGB.get(len(names)) or ["red", "green", "blue"]
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        if isinstance(item, int) or str(item).isdigit():
            band = int(item)
        elif str(item).lower() in names:
            band = names.index(str(item).lower()) + 1
        else:
            raise InputError(f"band {item!r} is not a band of {str(mul_path)!r}; its bands are "
                             f"{', '.join(f'{i}={n}' for i, n in enumerate(names, 1))} (give numbers or names)")
        if not 1 <= band <= len(names):
            raise InputError(f"band {band} asked of {str(mul_path)!r}, which has {len(names)} bands; "
                             f"choose bands in 1..{len(names)}")
        out.append(band)
    return out


def pansharpen_vrt_xml(pan_path: str | os.PathLike, mul_path: str | os.PathLike, mul_bands: list[int],
                       *, nodata: float | None = NODATA) -> str:
    """The ``VRTPansharpenedDataset`` XML: PAN band 1 + ``mul_bands`` (output band i = ``mul_bands[i]``).

    Paths are absolute (``relativeToVRT="0"``); GDAL derives grid, CRS, weights and algorithm.
    ``nodata``: input value that means "no image" (also the output's nodata); None: none.
    """
    pan, mul = escape(str(Path(pan_path).resolve())), escape(str(Path(mul_path).resolve()))
    spectral = "".join(
        f'<SpectralBand dstBand="{i}"><SourceFilename relativeToVRT="0">{mul}</SourceFilename>'
        f"<SourceBand>{b}</SourceBand></SpectralBand>"
        for i, b in enumerate(mul_bands, 1)
    )
    return (
        '<VRTDataset subClass="VRTPansharpenedDataset"><PansharpeningOptions>'
        f'<PanchroBand><SourceFilename relativeToVRT="0">{pan}</SourceFilename><SourceBand>1</SourceBand></PanchroBand>'
        f"{'' if nodata is None else f'<NoData>{nodata:g}</NoData>'}{spectral}</PansharpeningOptions></VRTDataset>"
    )


def pansharpened_path(pan_path: str | os.PathLike, mul_path: str | os.PathLike, bands=None) -> str:
    """The ``/vsimem`` path of the pan-sharpened VRT of ``pan_path`` + ``mul_path`` (made once).

    The file name is ``<PAN stem>.vrt`` under a folder named by a hash of the inputs, so the
    same inputs give the same path (resumable chip exports compare paths) and the chip names
    keep the PAN tile's name.

    Raises:
        InputFileNotFoundError: a missing input. InputError: bad bands, or grids GDAL refuses.
    """
    require_file(pan_path, what="panchromatic raster")
    require_file(mul_path, what="multispectral raster (--pan-sharpen)")
    mul_bands = resolve_mul_bands(bands, mul_path)
    xml = pansharpen_vrt_xml(pan_path, mul_path, mul_bands)
    key = hashlib.sha1(xml.encode()).hexdigest()[:16]
    path = f"{VSIMEM_DIR}/{key}/{Path(pan_path).stem}.vrt"
    if path not in _OPEN:
        _OPEN[path] = _write_vsimem(path, xml, pan_path, mul_path)
        _XML[path] = xml
    _PAN[path] = str(pan_path)
    return path


def display_path(path) -> str:
    """The panchromatic file behind a pan-sharpened ``/vsimem`` path (what a user gave), else ``path``."""
    return _PAN.get(str(path), str(path))


def vsimem_source(path: str) -> str | None:
    """The VRT XML behind a pan-sharpened ``/vsimem`` path made in this process (None otherwise);
    another process (a Dask worker) recreates the same path with :func:`ensure_vsimem`."""
    return _XML.get(str(path))


def ensure_vsimem(path: str, xml: str) -> None:
    """Make ``path`` exist in this process's /vsimem with ``xml`` (idempotent)."""
    if path not in _OPEN:
        _OPEN[path] = _write_vsimem(path, xml, path, path)
        _XML[path] = xml


def _write_vsimem(path: str, xml: str, pan_path, mul_path):
    """Write ``xml`` to ``path`` in /vsimem and check that GDAL opens it; returns the keeper."""
    import rasterio
    from rasterio.io import MemoryFile

    folder, name = path.rsplit("/", 1)
    memfile = MemoryFile(xml.encode(), dirname=folder.removeprefix("/vsimem/"), filename=name)
    try:
        with rasterio.open(memfile.name) as ds:
            ds.read(1, window=((0, 1), (0, 1)))
    except rasterio.errors.RasterioError as exc:
        memfile.close()
        raise InputError(
            f"GDAL cannot pan-sharpen {str(pan_path)!r} with {str(mul_path)!r} ({str(exc).splitlines()[0]}); "
            "pass a 1-band panchromatic raster and the multispectral raster of the same footprint"
        ) from None
    if memfile.name != path:  # rasterio builds the name from dirname/filename
        raise RuntimeError(f"unexpected /vsimem name {memfile.name!r} (wanted {path!r})")
    return memfile


def pan_sharpen_inputs(images, mul, bands=None) -> list[str]:
    """``--pan-sharpen MUL`` of the CLI: one PAN image + its MUL -> ``[vsimem VRT path]``.

    Raises:
        InputError: not exactly one image (give each PAN/MUL pair its own run, or a catalog entry).
    """
    images = list(images)
    if len(images) != 1:
        raise InputError(f"--pan-sharpen pairs ONE panchromatic image with its multispectral raster, got "
                         f"{len(images)} images; run once per pair or use a catalog entry with pan/mul patterns")
    return [pansharpened_path(images[0], mul, bands)]
