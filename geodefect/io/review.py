"""Human in the loop: export the least certain panoramas for review, import the reviewed labels.

Export (``geodefect infer ... --review N``) writes ``review/``::

    review/review.csv          image,source,probability,predicted,label   (label empty: fill in 0 or 1)
    review/images/<name>       the panorama
    review/overlays/<stem>.png the panorama with its damage heatmap (max over damage classes)
    review/heatmaps/<stem>.npy the stage-1 heatmaps, (K, H, W) float16, one channel per class

"Least certain" = probability closest to 0.5. Import (``geodefect review import REVIEW_CSV
--into DATASET``) matches every row with a filled label to the dataset's images by content
(SHA-256, never by file name: panorama sets reuse names like ``pano_000.jpg``), replaces the
label of an image already there, copies a new one into ``DATASET/images/`` (renamed
``<stem>-<hash8>`` when its name is taken) and rewrites ``DATASET/labels.csv`` atomically,
so the next ``geodefect train`` uses it. Review images whose names repeat are exported as
``<index>_<name>``.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from dataclasses import dataclass
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
        names = _unique_names([paths[i] for i in chosen])
        for i, name in zip(chosen, names, strict=True):
            p, stem = paths[i], Path(name).stem
            shutil.copy2(p, folder / "images" / name)
            write_overlay(folder / "overlays" / f"{stem}.png", p, heatmaps[i][channels].max(0))
            np.save(folder / "heatmaps" / f"{stem}.npy", heatmaps[i].astype(np.float16))
            w.writerow([name, str(p.resolve()), f"{scores[i]:.4f}", int(scores[i] >= 0.5), ""])
    return chosen.tolist()


def _unique_names(paths: list[Path]) -> list[str]:
    """File names for the review folder: the name, or ``<index>_<name>`` where names repeat."""
    names = [p.name for p in paths]
    return [n if names.count(n) == 1 else f"{i:03d}_{n}" for i, n in enumerate(names)]


def import_review(review_csv: str | Path, dataset: str | Path) -> dict[str, int]:
    """Take reviewed labels into a panorama dataset (``images/`` + ``labels.csv``).

    Reviewed images are matched to the dataset's by content (SHA-256), never by file name:
    panorama sets reuse names like ``pano_000.jpg``. An image already in the dataset gets its
    label replaced (``updated``); a new one is copied in (``added``), under its own name or,
    when that name is taken by another image, ``<stem>-<hash8><suffix>``. Rows with an empty
    label are skipped; labels must be 0 or 1. Everything is checked before the dataset is
    touched; a failure while copying removes the copies.

    Returns:
        counts of ``added``, ``updated`` and ``skipped`` rows.
    """
    review_csv, dataset = Path(review_csv), Path(dataset)
    if not review_csv.is_file():
        raise InputFileNotFoundError(f"review CSV {str(review_csv)!r} does not exist; pass review/review.csv")
    reviewed, skipped = _read_reviewed(review_csv)
    labels_csv = dataset / "labels.csv"
    current = _read_labels_dict(labels_csv) if labels_csv.is_file() else {}
    plan = _plan_import(reviewed, dataset / "images", current, review_csv)
    counts = {"added": sum(not p.update for p in plan), "updated": sum(p.update for p in plan), "skipped": skipped}
    _apply_import(plan, dataset, current, labels_csv)
    return counts


@dataclass
class _Row:
    line: int
    name: str
    label: int
    src: Path
    sha: str = ""


@dataclass
class _Planned:
    name: str
    label: int
    src: Path | None  # None: the image is already in the dataset
    update: bool


def _plan_import(rows: list[_Row], images: Path, current: dict[str, int], review_csv: Path) -> list[_Planned]:
    """Match each reviewed image to the dataset's by content; new names for new images."""
    for row in rows:
        row.sha = _sha256(row.src)
    sizes = {r.src.stat().st_size for r in rows}
    by_sha = {}
    if images.is_dir():  # hash only the files that could match (same byte size)
        for f in sorted(images.iterdir()):
            if f.is_file() and f.stat().st_size in sizes:
                by_sha.setdefault(_sha256(f), f.name)
    plan, taken, seen = [], set(current) | ({f.name for f in images.iterdir()} if images.is_dir() else set()), {}
    for row in rows:
        if row.sha in seen:
            raise InputError(f"{str(review_csv)!r} lines {seen[row.sha]} and {row.line} are the same image; "
                             "keep one row per image")
        seen[row.sha] = row.line
        if row.sha in by_sha:
            plan.append(_Planned(by_sha[row.sha], row.label, None, by_sha[row.sha] in current))
            continue
        name = row.name if row.name not in taken else f"{Path(row.name).stem}-{row.sha[:8]}{Path(row.name).suffix}"
        if name in taken:
            raise InputError(f"{str(review_csv)!r} line {row.line}: cannot name image {row.name!r} in "
                             f"{str(images)!r}: {row.name!r} and {name!r} are other images; rename it")
        taken.add(name)
        plan.append(_Planned(name, row.label, row.src, False))
    return plan


def _apply_import(plan: list[_Planned], dataset: Path, current: dict[str, int], labels_csv: Path) -> None:
    from geodefect.io.atomic import atomic_path

    images = dataset / "images"
    copied = []
    try:
        images.mkdir(parents=True, exist_ok=True)
        for p in plan:
            if p.src is not None:
                copied.append(images / p.name)
                shutil.copy2(p.src, images / p.name)
            current[p.name] = p.label
        with atomic_path(labels_csv) as tmp, tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "label"])
            w.writerows(sorted(current.items()))
    except BaseException:
        for path in copied:
            path.unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_reviewed(review_csv: Path) -> tuple[list[_Row], int]:
    """The rows with a label, each with the file it names, and the number of rows without one."""
    rows, skipped = [], 0
    with review_csv.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image", "label"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{str(review_csv)!r} lacks column(s) {', '.join(sorted(missing))}; "
                             f"expected the header {','.join(REVIEW_COLUMNS)}")
        for n, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip()
            if not label:
                skipped += 1
                continue
            if label not in ("0", "1"):
                raise InputError(f"{str(review_csv)!r} line {n}: label {label!r} must be 0, 1 or empty (not reviewed)")
            rows.append(_Row(n, (row.get("image") or "").strip(), int(label), _reviewed_file(review_csv, row, n)))
    names = [r.name for r in rows]
    for r in rows:  # rows sharing a name and falling back on review/images/<name> share one file
        if names.count(r.name) > 1 and r.src.parent == review_csv.parent / "images":
            raise InputError(f"{str(review_csv)!r}: image name {r.name!r} is on several rows and line {r.line} "
                             "has no existing source path: which image it means is ambiguous; fix its source")
    return rows, skipped


def _reviewed_file(review_csv: Path, row: dict, n: int) -> Path:
    """The file a row names: its ``source`` when it exists, else ``images/<image>`` beside the CSV."""
    name = (row.get("image") or "").strip()
    source = (row.get("source") or "").strip()
    if source and Path(source).is_file():
        return Path(source)
    if name and (review_csv.parent / "images" / name).is_file():
        return review_csv.parent / "images" / name
    raise InputFileNotFoundError(f"{str(review_csv)!r} line {n}: image {name!r} is neither at its "
                                 f"source nor in {str(review_csv.parent / 'images')!r}")


def _read_labels_dict(path: Path) -> dict[str, int]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not {"image", "label"} <= set(reader.fieldnames or []):
            raise InputError(f"{str(path)!r} has the header {reader.fieldnames!r}; expected image,label")
        out = {}
        for n, row in enumerate(reader, start=2):
            if (row.get("label") or "").strip() not in ("0", "1") or not row.get("image"):
                raise InputError(f"{str(path)!r} line {n}: expected an image name and a label 0 or 1, got "
                                 f"{row.get('image')!r}, {row.get('label')!r}")
            out[row["image"]] = int(row["label"])
        return out
