"""Synthetic railhead images (line-scan style) with defect masks and COCO boxes.

A bright vertical railhead band on a dark background, with the streaky texture of a
line-scan camera (each column has its own gain, each row its own exposure). Defects are
small dark spots and scars (elongated along the rail) on the band; ``dirt`` marks are
soft grey smudges that are boxed with their own category but are *not* defects (absent
from the masks). Images are grayscale uint8; masks uint8 255 = defect, 0 = background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: COCO categories written by :func:`make_rail_dataset`
RAIL_CATEGORIES = ({"id": 1, "name": "defect"}, {"id": 2, "name": "dirt"})


@dataclass(frozen=True)
class RailSample:
    """One synthetic rail image.

    Attributes:
        image: (H, W) uint8 grayscale.
        mask: (H, W) uint8, 255 = defect.
        boxes: ``(x, y, w, h, category)`` in pixels (COCO bbox convention, x = column).
    """

    image: np.ndarray
    mask: np.ndarray
    boxes: list[tuple[float, float, float, float, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RailDataset:
    """Files written by :func:`make_rail_dataset`."""

    images: Path
    masks: Path
    coco: Path


def _rail_band(rng: np.random.Generator, height_px: int, width_px: int, rail_width_px: int) -> tuple[np.ndarray, int]:
    """Background + bright band: (H, W) float32 and the band's first column."""
    from scipy.ndimage import gaussian_filter1d

    left = int(rng.integers(0, max(width_px - rail_width_px, 0) + 1))
    cols = np.arange(width_px)
    edge = 1.5
    band = 1 / (1 + np.exp(-(cols - left) / edge)) * (1 / (1 + np.exp((cols - left - rail_width_px) / edge)))
    column_gain = 1 + gaussian_filter1d(rng.normal(0, 0.08, width_px), 2)
    row_gain = 1 + gaussian_filter1d(rng.normal(0, 0.03, height_px), 3)
    bright = rng.uniform(170, 210)
    grey = 25 + band[None, :] * (bright - 25) * column_gain[None, :] * row_gain[:, None]
    grey += rng.normal(0, 4, (height_px, width_px))
    return grey.astype(np.float32), left


def _blob(rng: np.random.Generator, h: int, w: int, r: float, c: float, rad_r: float, rad_c: float) -> np.ndarray:
    """An irregular ellipse-like blob: (H, W) bool."""
    rr, cc = np.mgrid[0:h, 0:w]
    theta = np.arctan2(rr - r, cc - c)
    wobble = 1 + 0.25 * np.sin(3 * theta + rng.uniform(0, 6)) + 0.1 * np.sin(5 * theta + rng.uniform(0, 6))
    return ((rr - r) / rad_r) ** 2 + ((cc - c) / rad_c) ** 2 <= wobble**2


def _box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(mask)
    return (float(cols.min()), float(rows.min()), float(cols.max() - cols.min() + 1), float(rows.max() - rows.min() + 1))


def make_rail_image(
    *,
    height_px: int = 400,
    width_px: int = 160,
    rail_width_px: int | None = None,
    n_defects: int | None = None,
    n_dirt: int | None = None,
    seed: int = 0,
) -> RailSample:
    """One synthetic rail image.

    Args:
        height_px, width_px: image shape; the rail runs along the rows (vertical).
        rail_width_px: band width; default 70% of ``width_px`` (RSDDs-like crops). Use a
            narrow band in a wide image for line-scan frames (e.g. 160 of 1024).
        n_defects, n_dirt: counts; default 0-3 defects and 0-1 dirt marks, drawn from ``seed``.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    rail_width_px = rail_width_px or max(8, int(width_px * 0.7))
    grey, left = _rail_band(rng, height_px, width_px, rail_width_px)
    n_defects = int(rng.integers(0, 4)) if n_defects is None else n_defects
    n_dirt = int(rng.integers(0, 2)) if n_dirt is None else n_dirt
    mask = np.zeros((height_px, width_px), dtype=bool)
    boxes: list[tuple[float, float, float, float, str]] = []
    for _ in range(n_defects):
        rad_c = rng.uniform(2, max(3, rail_width_px * 0.15))
        rad_r = rad_c * rng.uniform(1.0, 3.0)  # scars are elongated along the rail
        r = rng.uniform(rad_r, height_px - rad_r)
        c = rng.uniform(left + rad_c + 1, left + rail_width_px - rad_c - 1)
        blob = _blob(rng, height_px, width_px, r, c, rad_r, rad_c)
        shade = gaussian_filter(blob.astype(np.float32), 0.8)
        grey = grey * (1 - shade) + shade * rng.uniform(45, 95)
        mask |= blob
        boxes.append((*_box_of(blob), "defect"))
    for _ in range(n_dirt):
        rad = rng.uniform(4, max(5, rail_width_px * 0.2))
        r, c = rng.uniform(rad, height_px - rad), rng.uniform(left, left + rail_width_px)
        blob = _blob(rng, height_px, width_px, r, c, rad * 1.5, rad) & ~mask
        if not blob.any():
            continue
        grey -= gaussian_filter(blob.astype(np.float32), 3) * rng.uniform(25, 40)
        boxes.append((*_box_of(blob), "dirt"))
    image = np.clip(grey, 0, 255).astype(np.uint8)
    return RailSample(image=image, mask=(mask * 255).astype(np.uint8), boxes=boxes)


def make_rail_dataset(
    out_dir: str | Path,
    *,
    n_images: int = 6,
    height_px: int = 400,
    width_px: int = 160,
    rail_width_px: int | None = None,
    seed: int = 0,
) -> RailDataset:
    """Write ``images/rail_NNN.png``, ``masks/rail_NNN.png`` and ``boxes_coco.json``.

    Every image has at least one defect. The COCO file has categories ``defect`` (1)
    and ``dirt`` (2); boxes are ``[x, y, w, h]`` in pixels and ``segmentation`` is the box
    rectangle, as in rail400's annotations.
    """
    from PIL import Image

    out = Path(out_dir)
    images, masks = out / "images", out / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    coco: dict = {"images": [], "annotations": [], "categories": [dict(c) for c in RAIL_CATEGORIES]}
    cat_ids = {c["name"]: c["id"] for c in RAIL_CATEGORIES}
    for i in range(n_images):
        sample = make_rail_image(
            height_px=height_px, width_px=width_px, rail_width_px=rail_width_px,
            n_defects=int(rng.integers(1, 4)), seed=int(rng.integers(2**31)),
        )
        name = f"rail_{i:03d}.png"
        Image.fromarray(sample.image).save(images / name)
        Image.fromarray(sample.mask).save(masks / name)
        coco["images"].append({"id": i + 1, "file_name": name, "width": width_px, "height": height_px})
        for x, y, w, h, cat in sample.boxes:
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": i + 1, "category_id": cat_ids[cat],
                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            })
    coco_path = out / "boxes_coco.json"
    coco_path.write_text(json.dumps(coco, indent=1))
    return RailDataset(images=images, masks=masks, coco=coco_path)
