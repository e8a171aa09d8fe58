"""Defect masks for inspection images: conventions, COCO boxes as weak masks, pairing.

Conventions (documented in DESIGN.md, section 13 "Inspection"):

* A mask file is grayscale or RGB(A), any bit depth PIL reads (PNG, JPG, TIF, BMP). A pixel
  is *defect* when its value is **> 127** in any colour channel (alpha ignored). Threshold
  127 cleans JPEG noise around 0/255 masks (RSDDs, CrackForest exports).
* In memory, masks are ``(H, W) bool``; on disk geodefect writes ``uint8`` 0/255 PNGs.
* Class index 0 = background, 1 = defect (crack or rail defect), in chips and model outputs.
* A COCO box ``[x, y, w, h]`` covers the pixels whose *centres* lie in ``[x, x+w) x [y, y+h)``
  (at least one pixel for a non-empty box); the union of a category's boxes is a weak mask.
* Images pair with masks (or COCO entries) by file *stem*; anything left unpaired, or a
  size mismatch, is an error that names the files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodefect.errors import InputError, InputFileNotFoundError

MASK_THRESHOLD = 127
from geodefect.io.image import IMAGE_SUFFIXES  # noqa: E402,F401  (the one list)


@dataclass(frozen=True)
class LabeledImage:
    """An image and where its defect label comes from (a mask file or COCO boxes).

    ``boxes`` are ``(x, y, w, h)`` pixel boxes of the selected categories (None for masks).
    """

    stem: str
    image: Path
    mask: Path | None = None
    boxes: tuple[tuple[float, float, float, float], ...] | None = None


def binarize_mask(values: np.ndarray, *, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` mask values -> ``(H, W) bool`` (> threshold in any colour channel)."""
    values = np.asarray(values)
    if values.ndim == 3:
        values = values[..., :3].max(axis=2) if values.shape[2] in (3, 4) else values.max(axis=2)
    if values.ndim != 2:
        raise InputError(f"mask must be (H, W) or (H, W, C), got shape {values.shape}")
    return values > threshold


def read_mask(path: str | Path, *, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """Read a mask file -> ``(H, W) bool`` (see module conventions)."""
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(f"mask file {str(p)!r} does not exist; check the path")
    try:
        with Image.open(p) as im:
            if im.mode == "P":
                im = im.convert("RGB")
            return binarize_mask(np.asarray(im), threshold=threshold)
    except OSError as exc:  # UnidentifiedImageError is an OSError too
        raise InputError(f"mask file {str(p)!r} is not a readable image ({exc}); replace or remove it") from None


def boxes_to_mask(boxes: Iterable[Sequence[float]], *, height_px: int, width_px: int) -> np.ndarray:
    """Fill COCO ``[x, y, w, h]`` boxes into an ``(H, W) bool`` weak mask (pixel centres inside)."""
    mask = np.zeros((height_px, width_px), dtype=bool)
    for x, y, w, h in boxes:
        if w <= 0 or h <= 0:
            continue
        c0, c1 = _cover(x, w, width_px)
        r0, r1 = _cover(y, h, height_px)
        mask[r0:r1, c0:c1] = True
    return mask


def _cover(start: float, length: float, limit: int) -> tuple[int, int]:
    """Pixel index range whose centres lie in ``[start, start+length)``, clipped, >= 1 px."""
    lo = math.ceil(start - 0.5)
    hi = max(math.ceil(start + length - 0.5), lo + 1)
    return min(max(lo, 0), limit), min(max(hi, 0), limit)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height_px, width_px)`` of an image file, from its header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as exc:  # not an image Pillow reads (UnidentifiedImageError), or unreadable
        if Path(path).suffix.lower() in (".tif", ".tiff"):
            from geodefect.io.image import read_image

            return read_image(path).shape[:2]  # a TIFF Pillow cannot open (rasterio reads it, or says why)
        raise InputError(f"image {str(path)!r} is not a readable image ({exc}); replace or remove it") from None


def list_images(folder: str | Path, *, what: str = "image folder") -> list[Path]:
    """Image files (by suffix) in ``folder``, sorted by name; errors if missing or empty."""
    d = Path(folder)
    if not d.is_dir():
        raise InputFileNotFoundError(f"{what} {str(d)!r} does not exist or is not a folder; check the path")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{what} {str(d)!r} has no images ({', '.join(IMAGE_SUFFIXES)}); check the path")
    stems = [p.stem for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(f"{what} {str(d)!r} has several files per stem ({', '.join(dupes[:5])}); keep one per image")
    return files


def _names(items: Iterable[str], limit: int = 5) -> str:
    items = sorted(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _check_paired(left: set[str], left_what: str, right: set[str], right_what: str, *, fix: str) -> None:
    """Raise one InputError naming the unpaired files on either side (and the fix)."""
    parts = [f"{what}: {_names(names)}" for names, what in ((left, left_what), (right, right_what)) if names]
    if parts:
        raise InputError("; ".join(parts) + "; " + fix)


def pair_masks(images_dir: str | Path, masks_dir: str | Path, *, check_sizes: bool = True) -> list[LabeledImage]:
    """Pair images with masks by stem (``001.jpg`` <-> ``001.png``).

    Raises:
        InputError: an image without mask or mask without image (names them), or an
            image and its mask of different sizes (names both files and sizes).
    """
    images = {p.stem: p for p in list_images(images_dir)}
    masks = {p.stem: p for p in list_images(masks_dir, what="mask folder")}
    _check_paired(
        set(images) - set(masks), f"images without a mask in {str(masks_dir)!r}",
        set(masks) - set(images), f"masks without an image in {str(images_dir)!r}",
        fix="images and masks pair by file name stem: rename or remove them",
    )
    pairs = [LabeledImage(stem=s, image=images[s], mask=masks[s]) for s in sorted(images)]
    if check_sizes:
        for pair in pairs:
            a, b = image_size(pair.image), image_size(pair.mask)
            if a != b:
                raise InputError(
                    f"image {str(pair.image)!r} is {a[1]}x{a[0]} px but its mask {str(pair.mask)!r} is "
                    f"{b[1]}x{b[0]} px (width x height); masks must match their images"
                )
    return pairs


def pair_coco(images_dir: str | Path, coco_path: str | Path, *, categories: Sequence[str] | None = None) -> list[LabeledImage]:
    """Pair images with their COCO boxes (of ``categories``; all when None) by file stem.

    Images listed in the COCO file with no boxes of those categories get ``boxes=()``.

    Raises:
        InputError: an image on disk missing from the COCO file or the reverse (names
            them), an unknown category (lists the file's categories), or a COCO
            width/height that differs from the image's.
    """
    from geodefect.io.coco import read_coco

    coco = read_coco(coco_path)
    by_image = coco.boxes_by_image(categories)
    entries = {Path(img.file_name).stem: img for img in coco.images.values()}
    images = {p.stem: p for p in list_images(images_dir)}
    _check_paired(
        set(images) - set(entries), f"images not in {str(coco_path)!r}",
        set(entries) - set(images), f"COCO images missing from {str(images_dir)!r}",
        fix="images pair with COCO `file_name` by stem",
    )
    out = []
    for stem in sorted(images):
        entry = entries[stem]
        size = image_size(images[stem])
        if size != (entry.height, entry.width):
            raise InputError(
                f"image {str(images[stem])!r} is {size[1]}x{size[0]} px but {str(coco_path)!r} says "
                f"{entry.width}x{entry.height}; the annotations belong to another image size"
            )
        boxes = tuple(a.bbox for a in by_image[entry.id])
        out.append(LabeledImage(stem=stem, image=images[stem], boxes=boxes))
    return out


def read_label_mask(item: LabeledImage, *, height_px: int, width_px: int) -> np.ndarray:
    """The ``(H, W) bool`` defect mask of a :class:`LabeledImage` (mask file or filled boxes)."""
    if item.mask is not None:
        return read_mask(item.mask)
    return boxes_to_mask(item.boxes or (), height_px=height_px, width_px=width_px)
