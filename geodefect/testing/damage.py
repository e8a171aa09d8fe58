"""Synthetic road-damage data: RDD-like country folders and street panoramas (deterministic by seed).

Country folders mimic RDD2022 (``COUNTRY/train/images/*.jpg`` + ``COUNTRY/train/annotations/xmls/*.xml``)
with four damage types drawn on an asphalt texture:

- D00 longitudinal crack: a wandering, mostly vertical dark line;
- D10 transverse crack: a wandering, mostly horizontal dark line;
- D20 alligator crack: a mesh of short cracks on a jittered lattice;
- D40 pothole: a dark ellipse with a lighter rim.

Each country has a *style* (colour tint, brightness, texture strength, blur, damage scale), so
the domains differ as real countries do (camera, asphalt, light). Some images have no damage
(negatives), some boxes belong to an ignored class (D43) and some are tiny (< 400 px²) to exercise
the reader and the crop rules.

Panoramas are wide street images: sky, buildings with dark window lines (crack look-alikes),
and a road surface at the bottom that carries damage in about half of them; image-level labels
in ``labels.csv`` and road-surface masks in ``masks/``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DAMAGE_CLASSES = ("D00", "D10", "D20", "D40")


@dataclass(frozen=True)
class CountryStyle:
    """Appearance of one synthetic country (domain)."""

    tint: tuple[float, float, float]
    brightness: float
    texture: float
    blur_px: float
    scale: float


def country_style(index: int) -> CountryStyle:
    """A deterministic, clearly different style per country index."""
    rng = np.random.default_rng(1000 + index)
    tint = tuple(float(v) for v in rng.uniform(0.8, 1.2, 3))
    return CountryStyle(
        tint=tint,  # type: ignore[arg-type]
        brightness=float(rng.uniform(90, 150)),
        texture=float(rng.uniform(6, 22)),
        blur_px=float(rng.choice([0.0, 0.6, 1.2])),
        scale=float(rng.uniform(0.8, 1.3)),
    )


def make_asphalt(rng: np.random.Generator, height_px: int, width_px: int, style: CountryStyle) -> np.ndarray:
    """Asphalt texture: (H, W, 3) float32 on the 0..255 scale."""
    from scipy.ndimage import gaussian_filter

    fine = rng.normal(0, style.texture, (height_px, width_px))
    coarse = gaussian_filter(rng.normal(0, style.texture * 3, (height_px, width_px)), 6)
    gray = style.brightness + fine + coarse
    return np.stack([gray * t for t in style.tint], axis=-1).astype(np.float32)


def draw_damage(draw, rng: np.random.Generator, kind: str, box: tuple[int, int, int, int], *, dark: int, scale: float) -> None:
    """Draw one damage of ``kind`` inside ``box`` = (x0, y0, x1, y1) with PIL ``ImageDraw``."""
    x0, y0, x1, y1 = box
    width = max(1, round(2 * scale))
    if kind in ("D00", "D10"):
        n = 12
        t = np.linspace(0, 1, n)
        wobble = rng.normal(0, 0.08, n).cumsum() * 0.5
        if kind == "D00":
            xs = (x0 + x1) / 2 + wobble * (x1 - x0)
            ys = y0 + t * (y1 - y0)
        else:
            xs = x0 + t * (x1 - x0)
            ys = (y0 + y1) / 2 + wobble * (y1 - y0)
        xs = np.clip(xs, x0, x1)
        ys = np.clip(ys, y0, y1)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=(dark,) * 3, width=width)
    elif kind == "D20":
        step = max(6, round(10 * scale))
        gx = np.arange(x0, x1 + 1, step, dtype=float)
        gy = np.arange(y0, y1 + 1, step, dtype=float)
        pts = np.stack(np.meshgrid(gx, gy), -1) + rng.uniform(-step / 3, step / 3, (len(gy), len(gx), 2))
        for r in range(len(gy)):
            for c in range(len(gx)):
                if c + 1 < len(gx):
                    draw.line([tuple(pts[r, c]), tuple(pts[r, c + 1])], fill=(dark,) * 3, width=max(1, width - 1))
                if r + 1 < len(gy):
                    draw.line([tuple(pts[r, c]), tuple(pts[r + 1, c])], fill=(dark,) * 3, width=max(1, width - 1))
    elif kind == "D40":
        draw.ellipse([x0, y0, x1, y1], fill=(min(255, dark + 90),) * 3)
        inset = max(2, (x1 - x0) // 6)
        draw.ellipse([x0 + inset, y0 + inset, x1 - inset, y1 - inset], fill=(max(0, dark - 10),) * 3)
    else:
        raise ValueError(f"unknown damage kind {kind!r}; expected one of {', '.join(DAMAGE_CLASSES)}")


def damage_box(rng: np.random.Generator, kind: str, width_px: int, height_px: int, scale: float) -> tuple[int, int, int, int]:
    """A random box for a damage kind (long and thin for cracks, compact for potholes)."""
    long_px = int(rng.uniform(60, 110) * scale)
    short_px = int(rng.uniform(18, 30) * scale)
    if kind == "D00":
        w, h = short_px, long_px
    elif kind == "D10":
        w, h = long_px, short_px
    elif kind == "D20":
        w = h = int(rng.uniform(45, 70) * scale)
    else:
        w, h = int(rng.uniform(30, 50) * scale), int(rng.uniform(22, 36) * scale)
    w, h = min(w, width_px - 2), min(h, height_px - 2)
    x0 = int(rng.integers(1, width_px - w))
    y0 = int(rng.integers(1, height_px - h))
    return x0, y0, x0 + w, y0 + h


def render_road_image(
    rng: np.random.Generator, style: CountryStyle, *, height_px: int, width_px: int, kinds: list[str]
) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """A road-surface image with damage: ``((H, W, 3) uint8, [(kind, box), ...])``."""
    from PIL import Image, ImageDraw, ImageFilter

    base = make_asphalt(rng, height_px, width_px, style)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    dark = int(max(0, style.brightness - 70))
    boxes = []
    for kind in kinds:
        box = damage_box(rng, kind, width_px, height_px, style.scale)
        draw_damage(draw, rng, kind, box, dark=dark, scale=style.scale)
        boxes.append((kind, box))
    if style.blur_px > 0:
        img = img.filter(ImageFilter.GaussianBlur(style.blur_px))
    return np.asarray(img), boxes


def make_damage_dataset(
    out_dir: str | Path,
    *,
    countries: tuple[str, ...] = ("Alpha", "Bravo", "Charlie"),
    n_images: int = 12,
    size_px: int = 256,
    negative_fraction: float = 0.15,
    seed: int = 0,
) -> Path:
    """Write RDD-like country folders under ``out_dir`` and return it.

    Layout (as RDD2022 ships it)::

        OUT/COUNTRY/train/images/COUNTRY_000000.jpg
        OUT/COUNTRY/train/annotations/xmls/COUNTRY_000000.xml

    Every image holds 1-3 damages of the four classes (about ``negative_fraction`` hold none);
    every fourth image also has an ignored-class box (D43) and a tiny (< 400 px²) D00 box.
    """
    from PIL import Image

    from geodefect.io.voc import VocObject, write_voc

    out = Path(out_dir)
    for ci, country in enumerate(countries):
        rng = np.random.default_rng([seed, ci])
        style = country_style(ci)
        img_dir = out / country / "train" / "images"
        xml_dir = out / country / "train" / "annotations" / "xmls"
        img_dir.mkdir(parents=True, exist_ok=True)
        xml_dir.mkdir(parents=True, exist_ok=True)
        for i in range(n_images):
            n_damage = 0 if rng.random() < negative_fraction else int(rng.integers(1, 4))
            kinds = [DAMAGE_CLASSES[(i + k) % 4] for k in range(n_damage)]
            pixels, boxes = render_road_image(rng, style, height_px=size_px, width_px=size_px, kinds=kinds)
            name = f"{country}_{i:06d}"
            Image.fromarray(pixels).save(img_dir / f"{name}.jpg", quality=92)
            objects = [VocObject(k, x0 + 1, y0 + 1, x1, y1) for k, (x0, y0, x1, y1) in boxes]
            if i % 4 == 3:
                objects.append(VocObject("D43", 5.5, 5.5, 60.25, 30.75))
                objects.append(VocObject("D00", 10, 10, 25, 30))  # 15 x 20 = 300 px² < 400: dropped
            write_voc(xml_dir / f"{name}.xml", filename=f"{name}.jpg", size=(size_px, size_px, 3), objects=objects)
    return out


@dataclass(frozen=True)
class PanoramaSet:
    """Paths written by :func:`make_panoramas`."""

    root: Path
    images: Path
    masks: Path
    labels_csv: Path


def make_panoramas(
    out_dir: str | Path,
    *,
    n_images: int = 12,
    height_px: int = 128,
    width_px: int = 512,
    damage_fraction: float = 0.5,
    style_index: int = 0,
    seed: int = 0,
) -> PanoramaSet:
    """Write synthetic street panoramas with image-level labels and road-surface masks.

    Layout::

        OUT/images/pano_000.jpg       (H, W, 3) uint8: sky, buildings (window lines), road at the bottom
        OUT/masks/pano_000.png        (H, W) uint8 road surface 255, elsewhere 0
        OUT/labels.csv                image,label   (1 = road damage present, 0 = none)

    Damage (1-3 of the four classes) is drawn on the road surface of the positive images only,
    with the style of synthetic country ``style_index`` (so a stage-1 model trained on that
    country's crops sees the same appearance).
    """
    from PIL import Image, ImageDraw

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 77])
    style = country_style(style_index)
    road_top = height_px // 2
    rows = []
    n_pos = round(n_images * damage_fraction)
    labels = np.array([1] * n_pos + [0] * (n_images - n_pos))
    rng.shuffle(labels)
    for i, label in enumerate(labels.tolist()):
        kinds = [DAMAGE_CLASSES[int(k)] for k in rng.integers(0, 4, int(rng.integers(1, 4)))] if label else []
        road, _ = render_road_image(rng, style, height_px=height_px - road_top, width_px=width_px, kinds=kinds)
        img = Image.new("RGB", (width_px, height_px))
        sky = np.linspace(200, 150, road_top)[:, None, None] * np.array([0.7, 0.85, 1.0])
        img.paste(Image.fromarray(np.broadcast_to(sky, (road_top, width_px, 3)).astype(np.uint8)), (0, 0))
        _draw_buildings(ImageDraw.Draw(img), rng, road_top=road_top, width_px=width_px)
        img.paste(Image.fromarray(road), (0, road_top))
        name = f"pano_{i:03d}.jpg"
        img.save(out / "images" / name, quality=92)
        mask = np.zeros((height_px, width_px), np.uint8)
        mask[road_top:] = 255
        Image.fromarray(mask).save(out / "masks" / f"pano_{i:03d}.png")
        rows.append((name, label))
    labels_csv = out / "labels.csv"
    with labels_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows(rows)
    return PanoramaSet(root=out, images=out / "images", masks=out / "masks", labels_csv=labels_csv)


def _draw_buildings(draw, rng: np.random.Generator, *, road_top: int, width_px: int) -> None:
    """Facades with dark window lines: crack look-alikes that an ROI mask should exclude."""
    x = 0
    while x < width_px:
        w = int(rng.integers(40, 110))
        top = int(rng.integers(road_top // 5, road_top // 2))
        shade = int(rng.integers(120, 200))
        draw.rectangle([x, top, x + w, road_top], fill=(shade, shade - 20, shade - 40))
        for wy in range(top + 6, road_top - 8, 14):
            draw.line([(x + 5, wy), (x + w - 5, wy)], fill=(40, 40, 50), width=2)
        x += w + int(rng.integers(0, 15))
