"""Synthetic tunnel-lining crack images with pixel masks (deterministic by seed).

A crack is a thin (1-3 px), branching, low-contrast dark curve on textured concrete.
Tunnel-lining distractors that are *not* cracks (and are absent from the masks): straight
segment joints, stains (broad soft dark blobs) and bolt holes (small dark discs with a
light rim). Images are RGB uint8; masks are uint8 with 255 = crack, 0 = background (the
convention of :mod:`geodefect.labels.defects`: > 127 is defect).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CrackSample:
    """One synthetic image.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8, 255 = crack, 0 = background.
        has_crack: whether a crack was drawn.
    """

    image: np.ndarray
    mask: np.ndarray
    has_crack: bool


@dataclass(frozen=True)
class CrackDataset:
    """Folders written by :func:`make_crack_dataset`."""

    images: Path
    masks: Path
    labels_csv: Path


def make_concrete(rng: np.random.Generator, height_px: int, width_px: int) -> np.ndarray:
    """Textured concrete: (H, W) float32 grey level around 150-185 with fine and coarse noise."""
    from scipy.ndimage import gaussian_filter

    base = rng.uniform(150, 185)
    fine = gaussian_filter(rng.normal(0, 1, (height_px, width_px)), 0.8) * 14
    coarse = gaussian_filter(rng.normal(0, 1, (height_px, width_px)), 10) * 120
    speckle = rng.normal(0, 3, (height_px, width_px))
    return (base + fine + coarse + speckle).astype(np.float32)


def _walk(rng: np.random.Generator, start: np.ndarray, heading: float, n_steps: int) -> np.ndarray:
    """A smooth random walk of 1-px steps: (n, 2) float (row, col) points."""
    turns = np.cumsum(rng.normal(0, 0.12, n_steps))
    turns = np.convolve(turns, np.ones(5) / 5, mode="same")
    angles = heading + turns
    steps = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    return start + np.cumsum(steps, axis=0)


def draw_crack_mask(rng: np.random.Generator, height_px: int, width_px: int) -> np.ndarray:
    """A branching crack: (H, W) bool. Main path 0.7-1.3x the image size, 0-2 branches."""
    size = max(height_px, width_px)
    start = np.array([rng.uniform(0.1, 0.9) * height_px, rng.uniform(0.1, 0.9) * width_px])
    heading = rng.uniform(0, 2 * np.pi)
    main = np.concatenate(
        [_walk(rng, start, heading, int(size * rng.uniform(0.35, 0.65))),
         _walk(rng, start, heading + np.pi, int(size * rng.uniform(0.35, 0.65)))]
    )
    paths = [(main, rng.uniform(1.0, 1.8))]
    for _ in range(rng.integers(0, 3)):
        origin = main[rng.integers(0, len(main))]
        branch_heading = heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
        paths.append((_walk(rng, origin, branch_heading, int(size * rng.uniform(0.15, 0.35))), rng.uniform(0.6, 1.2)))
    mask = np.zeros((height_px, width_px), dtype=bool)
    for points, radius in paths:
        _stamp_path(mask, points, radius)
    return mask


def _stamp_path(mask: np.ndarray, points: np.ndarray, radius: float) -> None:
    """Mark every pixel within ``radius`` px of the path's points (tapered at the ends)."""
    h, w = mask.shape
    n = len(points)
    taper = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / max(n * 0.15, 1))
    for (r, c), t in zip(points, taper, strict=True):
        rad = max(0.5, radius * (0.5 + 0.5 * t))
        r0, r1 = int(np.floor(r - rad)), int(np.ceil(r + rad)) + 1
        c0, c1 = int(np.floor(c - rad)), int(np.ceil(c + rad)) + 1
        r0, r1, c0, c1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
        if r1 > r0 and c1 > c0:
            rr, cc = np.mgrid[r0:r1, c0:c1]
            mask[rr, cc] |= (rr + 0.5 - r) ** 2 + (cc + 0.5 - c) ** 2 <= rad**2


def add_distractors(rng: np.random.Generator, grey: np.ndarray) -> None:
    """Darken ``grey`` in place with a segment joint, stains and bolt holes (not cracks)."""
    from scipy.ndimage import gaussian_filter

    h, w = grey.shape
    if rng.random() < 0.5:  # segment joint: straight, full length, slightly blurred
        joint = np.zeros((h, w), dtype=np.float32)
        if rng.random() < 0.5:
            r = rng.integers(h // 8, h - h // 8)
            joint[r : r + rng.integers(2, 4), :] = 1
        else:
            c = rng.integers(w // 8, w - w // 8)
            joint[:, c : c + rng.integers(2, 4)] = 1
        grey -= gaussian_filter(joint, 0.7) * rng.uniform(25, 45)
    for _ in range(rng.integers(0, 3)):  # stains: broad, soft
        stain = np.zeros((h, w), dtype=np.float32)
        stain[rng.integers(0, h), rng.integers(0, w)] = 1
        sigma = rng.uniform(0.05, 0.12) * max(h, w)
        stain = gaussian_filter(stain, sigma)
        grey -= stain / stain.max() * rng.uniform(15, 35)
    rr, cc = np.mgrid[0:h, 0:w]
    for _ in range(rng.integers(0, 3)):  # bolt holes: dark disc, light rim
        r, c, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2.5, 5)
        d = np.hypot(rr - r, cc - c)
        grey[d <= rad] -= rng.uniform(50, 80)
        grey[(d > rad) & (d <= rad + 1.5)] += 15


def make_crack_image(
    *, height_px: int = 128, width_px: int = 128, has_crack: bool = True, distractors: bool = True, seed: int = 0
) -> CrackSample:
    """One synthetic concrete image, with a crack or without.

    The crack is 20-45 grey levels darker than its surroundings (low contrast), so it is
    about as dark as the joints and stains: shape, not brightness, separates them.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    grey = make_concrete(rng, height_px, width_px)
    if distractors:
        add_distractors(rng, grey)
    mask = draw_crack_mask(rng, height_px, width_px) if has_crack else np.zeros((height_px, width_px), bool)
    if has_crack:
        profile = gaussian_filter(mask.astype(np.float32), 0.6)
        profile = np.clip(profile / max(profile.max(), 1e-6) * 1.4, 0, 1)
        grey -= profile * rng.uniform(35, 55)
    tint = rng.uniform(-6, 6, 3)
    rgb = np.clip(grey[..., None] + tint, 0, 255).astype(np.uint8)
    return CrackSample(image=rgb, mask=(mask * 255).astype(np.uint8), has_crack=has_crack)


def make_crack_dataset(
    out_dir: str | Path,
    *,
    n_images: int = 12,
    height_px: int = 128,
    width_px: int = 128,
    crack_frac: float = 0.5,
    seed: int = 0,
) -> CrackDataset:
    """Write ``images/NNN.png`` (RGB), ``masks/NNN.png`` (0/255) and ``labels.csv``.

    ``labels.csv`` has columns ``image, has_crack`` (0/1). ``round(n_images * crack_frac)``
    images have cracks, in a seed-dependent order.
    """
    from PIL import Image

    out = Path(out_dir)
    images, masks = out / "images", out / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    flags = np.zeros(n_images, dtype=bool)
    flags[: int(round(n_images * crack_frac))] = True
    rng.shuffle(flags)
    rows = []
    for i, flag in enumerate(flags):
        sample = make_crack_image(
            height_px=height_px, width_px=width_px, has_crack=bool(flag), seed=int(rng.integers(2**31))
        )
        name = f"{i:03d}"
        Image.fromarray(sample.image).save(images / f"{name}.png")
        Image.fromarray(sample.mask).save(masks / f"{name}.png")
        rows.append({"image": f"{name}.png", "has_crack": int(flag)})
    labels = out / "labels.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "has_crack"])
        writer.writeheader()
        writer.writerows(rows)
    return CrackDataset(images=images, masks=masks, labels_csv=labels)
