"""Plain images (PNG, JPEG, TIFF without georeference) as ``(C, H, W)`` arrays.

This module is the ONE place where images in ``(H, W)`` / ``(H, W, C)`` layout become the
``(C, H, W)`` arrays used everywhere else (:func:`to_chw`), and back (:func:`to_hwc`).

:class:`ImageReader` has the sliding engine's reader protocol (``.shape -> (C, H, W)``,
``.read(window) -> (C, h, w)``, zero padding outside the image), like
:class:`geodefect.io.raster.RasterReader` for georeferenced rasters; both work with the
same window grid (:func:`geodefect.windows.iter_windows`). :func:`open_reader` picks one.
A plain image is decoded once and held in memory: inspection photos are small (a line-scan
rail image of 2048×2000 px is 4 MB), unlike aerial scenes, which go through rasterio.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from geodefect.errors import InputError, require_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def to_chw(array: np.ndarray) -> np.ndarray:
    """``(H, W)`` -> ``(1, H, W)``; ``(H, W, C)`` -> ``(C, H, W)`` (C <= 4 on the last axis).

    An array that is already ``(C, H, W)`` (C <= 4 on the first axis and more than 4 on the
    last) is returned unchanged.
    """
    a = np.asarray(array)
    if a.ndim == 2:
        return a[None]
    if a.ndim != 3:
        raise InputError(f"image array must be (H, W) or (H, W, C), got shape {a.shape}")
    if a.shape[2] <= 4:
        return np.ascontiguousarray(a.transpose(2, 0, 1))
    if a.shape[0] <= 4:
        return a
    raise InputError(f"cannot tell the channel axis of an image array of shape {a.shape}")


def to_hwc(array: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W, C)`` (for Pillow / matplotlib); ``(1, H, W)`` -> ``(H, W)``."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0]
    return np.ascontiguousarray(a.transpose(1, 2, 0)) if a.ndim == 3 else a


def read_image(path: str | os.PathLike, *, grayscale: bool = False) -> np.ndarray:
    """Read a plain image as ``(C, H, W)``: grayscale -> 1 band, RGB -> 3, RGBA -> 4.

    Palette and 16-bit images are converted by Pillow (palette -> RGB). TIFFs that Pillow
    cannot decode (multi-band, float) are read with rasterio.

    Args:
        grayscale: convert to one band (luminance).

    Raises:
        InputFileNotFoundError: missing file. InputError: not an image.
    """
    require_file(path, what="image")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if grayscale and im.mode not in ("L", "I;16", "I"):
                im = im.convert("L")
            elif im.mode in ("P", "CMYK", "YCbCr", "LA", "PA"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            arr = np.asarray(im)
    except UnidentifiedImageError:
        if Path(path).suffix.lower() in (".tif", ".tiff"):
            return _read_tiff_rasterio(path, grayscale=grayscale)
        raise InputError(f"image {str(path)!r} is not an image Pillow can read; expected PNG, JPEG or TIFF") from None
    except OSError as exc:
        raise InputError(f"image {str(path)!r} is truncated or corrupt ({exc}); copy it again") from None
    return to_chw(arr)


def read_image_uint8(path: str | os.PathLike, *, rgb: bool = False) -> np.ndarray:
    """An 8-bit photo as ``(C, H, W) uint8`` for the inspection models: 1 channel for grayscale,
    3 for colour (alpha dropped); ``rgb=True`` always gives 3 (grayscale repeated).

    Raises:
        InputError: pixels that are not 8-bit (and the errors of :func:`read_image`).
    """
    arr = read_image(path)
    if arr.dtype != np.uint8:
        raise InputError(f"image {str(path)!r} has {arr.dtype} pixels; inspection images must be 8-bit (uint8)")
    if arr.shape[0] in (2, 4):
        arr = arr[: arr.shape[0] - 1]
    if rgb and arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    return arr


def _read_tiff_rasterio(path, *, grayscale: bool) -> np.ndarray:
    import warnings

    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                arr = src.read()
    except rasterio.errors.RasterioError:
        raise InputError(f"image {str(path)!r} is not a readable image; expected PNG, JPEG or TIFF") from None
    if grayscale and arr.shape[0] >= 3:
        arr = (0.299 * arr[0] + 0.587 * arr[1] + 0.114 * arr[2]).astype(arr.dtype)[None]
    return arr


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``(C, H, W)`` or ``(H, W)`` uint8 as PNG/JPEG (by suffix), atomically."""
    from PIL import Image

    from geodefect.io.atomic import atomic_path

    arr = to_hwc(array[None] if array.ndim == 2 else array)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp)


class ImageReader:
    """Reader protocol over a plain image (or an in-memory ``(C, H, W)`` array).

    Args:
        source: a path, or an array (``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``).
        grayscale: read as one band.
        fill: value of pixels outside the image.

    Attributes:
        shape: ``(C, H, W)``.
    """

    def __init__(self, source, *, grayscale: bool = False, fill: float = 0) -> None:
        if isinstance(source, (str, os.PathLike)):
            self.path = str(source)
            self.array = read_image(source, grayscale=grayscale)
        else:
            self.path = None
            self.array = to_chw(source)
        self.fill = fill
        self.shape = tuple(self.array.shape)
        self.dtype = self.array.dtype

    def read(self, window: Window) -> np.ndarray:
        """``(C, h, w)`` pixels of ``window``; ``fill`` outside the image."""
        _, height, width = self.shape
        h, w = int(window.height), int(window.width)
        r0, c0 = int(window.row_off), int(window.col_off)
        rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r0 + h, height), min(c0 + w, width)
        if (rr0, cc0, rr1, cc1) == (r0, c0, r0 + h, c0 + w):
            return self.array[:, r0:r0 + h, c0:c0 + w].copy()
        out = np.full((self.shape[0], h, w), self.fill, dtype=self.dtype)
        if rr1 > rr0 and cc1 > cc0:
            out[:, rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = self.array[:, rr0:rr1, cc0:cc1]
        return out

    def close(self) -> None:
        """Nothing to release (kept for symmetry with RasterReader)."""

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_reader(path: str | os.PathLike, **kwargs):
    """A reader for ``path``: :class:`RasterReader` for georeferenced rasters, else :class:`ImageReader`.

    ``kwargs`` go to the chosen reader (``bands``/``stretch``/``cell_size_m`` for rasters,
    ``grayscale`` for images).
    """
    require_file(path, what="image")
    if Path(path).suffix.lower() in (".tif", ".tiff") and _is_georeferenced(path):
        from geodefect.io.raster import RasterReader

        return RasterReader(path, **kwargs)
    return ImageReader(path, **{k: v for k, v in kwargs.items() if k in ("grayscale", "fill")})


def _is_georeferenced(path) -> bool:
    import warnings

    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.crs is not None
    except rasterio.errors.RasterioError:
        return False


def list_image_files(inputs) -> list[Path]:
    """Image files from files and folders (a folder gives its images with :data:`IMAGE_SUFFIXES`, sorted).

    Raises:
        InputError: for a path that does not exist, or when no image is found.
    """
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"input {str(p)!r} does not exist; give image files or a folder of images")
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, items))}")
    return paths


#: zlib's run-length strategy (``Z_RLE``): inference's masks, probabilities and overlays (mostly flat)
#: encode ~15 % faster than with the default strategy, and masks and probabilities are smaller
ZLIB_RLE = 3


def write_png(path: Path, array_chw: np.ndarray, *, rle: bool = False) -> None:
    """Write ``(1|3, H, W) uint8`` as a grayscale or RGB PNG (zlib level 1; ``rle``: :data:`ZLIB_RLE`)."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(to_hwc(array_chw))).save(path, compress_level=1,
                                                                  compress_type=ZLIB_RLE if rle else -1)


#: JPEG overlays (:func:`overlay_suffix`): quality 95 without chroma subsampling (4:4:4), so painted
#: pixels keep sharp colour edges; on a 2048 x 2000 rail frame 0.02 s and 230 KB instead of the
#: PNG's 0.14 s and 770 KB, within 7 grey levels of the PNG (the photo was a JPEG already)
JPEG_QUALITY = 95


def overlay_suffix(image_path: Path) -> str:
    """``.jpg`` for a JPEG photo, else ``.png``: a picture painted over a lossy photo is stored lossy
    too (it is for people to look at; masks and probabilities stay lossless PNG)."""
    return ".jpg" if Path(image_path).suffix.lower() in (".jpg", ".jpeg") else ".png"


def write_picture(path: Path, array_chw: np.ndarray) -> None:
    """Write ``(1|3, H, W) uint8`` as JPEG (:data:`JPEG_QUALITY`, 4:4:4) if ``path`` ends in ``.jpg``,
    else as PNG (:func:`write_png` with the RLE strategy)."""
    from PIL import Image

    if Path(path).suffix != ".jpg":
        write_png(path, array_chw, rle=True)
        return
    Image.fromarray(np.ascontiguousarray(to_hwc(array_chw))).save(path, format="JPEG", quality=JPEG_QUALITY,
                                                                  subsampling=0)
