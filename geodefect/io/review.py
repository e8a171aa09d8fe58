"""Human in the loop: export the least certain panoramas for review, import the reviewed labels.

Export (``geodefect infer ... --review N``) writes ``review/``::

    review/review.csv          image,source,probability,predicted,label   (label empty: fill in 0 or 1)
    review/images/<name>       the panorama
    review/overlays/<stem>.png the panorama with its damage heatmap (max over damage classes)
    review/heatmaps/<stem>.npy the stage-1 heatmaps, (K, H, W) float16, one channel per class

"Least certain" = probability closest to 0.5. Import (``geodefect review import REVIEW_CSV
--into DATASET``) copies every row with a filled label into ``DATASET/images/`` and adds the
label to ``DATASET/labels.csv`` (replacing the label of an image already listed), so the next
``geodefect train`` uses it.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np

from geodefect.errors import InputError, InputFileNotFoundError

log = logging.getLogger(__name__)

REVIEW_COLUMNS = ["image", "source", "probability", "predicted", "label"]


def write_overlay(path: Path, image_path: Path, heat: np.ndarray, *, alpha: float = 0.5) -> None:
    """PNG of the image with ``heat`` ((H, W) in 0..1) in the 'inferno' colour map blended over it."""
    from matplotlib import colormaps
    from PIL import Image

    from geodefect.datasets.damage import read_rgb
    from geodefect.io.atomic import atomic_path

    rgb = read_rgb(image_path).astype(np.float32)
    colour = colormaps["inferno"](np.clip(heat, 0, 1))[..., :3] * 255
    weight = alpha * np.clip(heat, 0, 1)[..., None]
    out = (rgb * (1 - weight) + colour * weight).clip(0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(out).save(tmp, format="PNG")


def least_certain(scores: np.ndarray, n: int) -> np.ndarray:
    """Indexes of the ``n`` scores closest to 0.5 (ties: input order)."""
    return np.argsort(np.abs(np.asarray(scores) - 0.5), kind="stable")[:n]


def export_review(folder: Path, paths: list[Path], scores: np.ndarray, heatmaps: list[np.ndarray],
                  channels: list[int], *, n: int) -> list[int]:
    """Write the review folder for the ``n`` least certain images; returns their indexes."""
    if n < 1:
        raise InputError(f"`review` must be >= 1, got {n}")
    chosen = least_certain(scores, n)
    (folder / "images").mkdir(parents=True)
    (folder / "overlays").mkdir()
    (folder / "heatmaps").mkdir()
    with (folder / "review.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(REVIEW_COLUMNS)
        for i in chosen:
            p = paths[i]
            shutil.copy2(p, folder / "images" / p.name)
            write_overlay(folder / "overlays" / f"{p.stem}.png", p, heatmaps[i][channels].max(0))
            np.save(folder / "heatmaps" / f"{p.stem}.npy", heatmaps[i].astype(np.float16))
            w.writerow([p.name, str(p.resolve()), f"{scores[i]:.4f}", int(scores[i] >= 0.5), ""])
    return chosen.tolist()


def import_review(review_csv: str | Path, dataset: str | Path) -> dict[str, int]:
    """Take reviewed labels into a panorama dataset (``images/`` + ``labels.csv``).

    Rows with an empty label are skipped; labels must be 0 or 1. Returns counts of
    ``added``, ``updated`` and ``skipped`` rows.
    """
    from geodefect.io.atomic import atomic_path

    review_csv, dataset = Path(review_csv), Path(dataset)
    if not review_csv.is_file():
        raise InputFileNotFoundError(f"review CSV {str(review_csv)!r} does not exist; pass review/review.csv")
    reviewed = _read_reviewed(review_csv)
    labels_csv = dataset / "labels.csv"
    current = _read_labels_dict(labels_csv) if labels_csv.is_file() else {}
    (dataset / "images").mkdir(parents=True, exist_ok=True)
    counts = {"added": 0, "updated": 0, "skipped": reviewed.pop("__skipped__")}
    for name, (label, src) in reviewed.items():
        target = dataset / "images" / name
        if not target.exists():
            shutil.copy2(src, target)
        counts["updated" if name in current else "added"] += 1
        current[name] = label
    with atomic_path(labels_csv) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        w.writerows(sorted(current.items()))
    return counts


def _read_reviewed(review_csv: Path) -> dict:
    out: dict = {"__skipped__": 0}
    with review_csv.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image", "label"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{str(review_csv)!r} lacks column(s) {', '.join(sorted(missing))}; expected {', '.join(REVIEW_COLUMNS)}")
        for n, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip()
            if not label:
                out["__skipped__"] += 1
                continue
            if label not in ("0", "1"):
                raise InputError(f"{str(review_csv)!r} line {n}: label {label!r} must be 0, 1 or empty (not reviewed)")
            src = review_csv.parent / "images" / row["image"]
            if not src.is_file():
                src = Path(row.get("source") or "")
            if not src.is_file():
                raise InputFileNotFoundError(f"{str(review_csv)!r} line {n}: image {row['image']!r} is neither in images/ nor at its source")
            out[row["image"]] = (int(label), src)
    return out


def _read_labels_dict(path: Path) -> dict[str, int]:
    with path.open(newline="") as f:
        return {row["image"]: int(row["label"]) for row in csv.DictReader(f)}
