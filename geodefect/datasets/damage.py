"""Road-damage patch datasets with one *domain* per country or source.

Two layouts are read (``detect_layout`` tells them apart):

``rdd``
    RDD2020/RDD2022 as they ship (checked against the RDD2022 archive layout)::

        ROOT/COUNTRY/train/images/COUNTRY_000123.jpg
        ROOT/COUNTRY/train/annotations/xmls/COUNTRY_000123.xml     (Pascal VOC, geodefect.io.voc)

    (``ROOT/COUNTRY/annotations/xmls`` + ``ROOT/COUNTRY/images`` is accepted too, RDD2020's
    per-split folders.) A sample is the crop of one box of a kept class (default D00, D10, D20,
    D40); boxes under ``min_area_px2`` (400 px²) are dropped; crops are resized to
    ``size_px`` x ``size_px`` (64). Images without boxes give no crop (they are negatives at
    image level). Optional ``background_per_image`` random boxes that overlap no damage give a
    ``background`` class (used by the panorama patch classifier, not by the RDD benchmark).

``folders``
    Any labelled patch collection: ``ROOT/DOMAIN/CLASS/*.jpg|png`` (whole images are samples).

A domain without samples is an error naming it (training on it would silently do nothing).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.io.voc import (
    IMAGE_SUFFIXES,
    RDD_CLASSES,
    RDD_IGNORED_CLASSES,
    VocObject,
    find_image,
    read_voc,
)

log = logging.getLogger(__name__)

BACKGROUND = "background"
MIN_AREA_PX2 = 400.0
CROP_SIZE_PX = 64


@dataclass(frozen=True)
class DamageSample:
    """One patch: an image file, the box to crop (None = whole image), its class and domain."""

    image: Path
    label: str
    domain: str
    box: tuple[float, float, float, float] | None = None  # VOC xmin, ymin, xmax, ymax


@dataclass
class CropArrays:
    """Crops held in memory (64x64x3 uint8 is 12 KiB per crop).

    Attributes:
        images: (N, 3, S, S) uint8.
        labels: (N,) int64 index into ``classes``.
        domains: (N,) int64 index into ``domain_names``.
    """

    images: np.ndarray
    labels: np.ndarray
    domains: np.ndarray
    classes: list[str]
    domain_names: list[str]
    sources: list[str] = field(default_factory=list)

    def subset(self, mask: np.ndarray) -> CropArrays:
        idx = np.flatnonzero(mask)
        return CropArrays(
            self.images[idx], self.labels[idx], self.domains[idx], self.classes, self.domain_names,
            [self.sources[i] for i in idx] if self.sources else [],
        )

    def __len__(self) -> int:
        return len(self.labels)


def detect_layout(root: str | Path) -> str:
    """``"rdd"`` if any ``ROOT/*/train/annotations/xmls`` (or ``ROOT/*/annotations/xmls``) exists, else ``"folders"``."""
    r = Path(root)
    if not r.is_dir():
        raise InputFileNotFoundError(f"data folder {str(r)!r} does not exist; check the path")
    for child in sorted(p for p in r.iterdir() if p.is_dir()):
        if _rdd_dirs(child) is not None:
            return "rdd"
    return "folders"


def list_domains(root: str | Path) -> list[str]:
    """Sub-folder names of ``root`` (hidden and temporary ones skipped), sorted."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_domains(
    root: str | Path,
    *,
    domains: list[str] | None = None,
    layout: str = "auto",
    classes: list[str] | None = None,
    min_area_px2: float = MIN_AREA_PX2,
    background_per_image: int = 0,
    seed: int = 0,
) -> dict[str, list[DamageSample]]:
    """Samples per domain, in ``domains`` order (default: every sub-folder).

    Raises:
        InputError: a named domain folder is missing, or a domain has no samples.
    """
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in ("rdd", "folders"):
        raise InputError(f"`layout` must be auto, rdd or folders, got {layout!r}")
    names = domains or list_domains(root)
    if not names:
        raise InputError(f"data folder {str(root)!r} has no domain sub-folders; expected ROOT/DOMAIN/...")
    out: dict[str, list[DamageSample]] = {}
    for i, name in enumerate(names):
        d = root / name
        if not d.is_dir():
            raise InputError(f"domain {name!r} has no folder {str(d)!r}; available: {', '.join(list_domains(root))}")
        if layout == "rdd":
            samples = scan_rdd_domain(
                d, classes=classes or list(RDD_CLASSES), min_area_px2=min_area_px2,
                background_per_image=background_per_image, seed=seed + i,
            )
        else:
            samples = scan_folder_domain(d, classes=classes)
        if not samples:
            raise InputError(
                f"domain {name!r} ({str(d)!r}) has no samples of classes {', '.join(classes or ['any'])}; "
                "remove it from the domain list or add data"
            )
        out[name] = samples
    return out


def scan_rdd_domain(
    domain_dir: str | Path,
    *,
    classes: list[str],
    ignore_classes: tuple[str, ...] = RDD_IGNORED_CLASSES,
    min_area_px2: float = MIN_AREA_PX2,
    background_per_image: int = 0,
    seed: int = 0,
) -> list[DamageSample]:
    """Crops of one RDD country folder. Images named by an annotation must exist (error otherwise)."""
    d = Path(domain_dir)
    dirs = _rdd_dirs(d)
    if dirs is None:
        raise InputError(f"{str(d)!r} is not an RDD country folder; expected {d}/train/annotations/xmls/*.xml")
    images_dir, xml_dir = dirs
    rng = np.random.default_rng(seed)
    samples: list[DamageSample] = []
    n_small = n_negative = 0
    for xml in sorted(xml_dir.glob("*.xml")):
        ann = read_voc(xml, classes=classes, ignore_classes=ignore_classes)
        image = find_image(ann, images_dir)
        n_negative += ann.is_negative
        kept = [o for o in ann.objects if o.area_px2 >= min_area_px2]
        n_small += len(ann.objects) - len(kept)
        samples += [DamageSample(image, o.name, d.name, (o.xmin, o.ymin, o.xmax, o.ymax)) for o in kept]
        if background_per_image and kept:
            size = (ann.width_px, ann.height_px) if ann.width_px else _image_size(image)
            for box in _background_boxes(rng, kept, size, background_per_image):
                samples.append(DamageSample(image, BACKGROUND, d.name, box))
    log.info("%s: %d crops (%d boxes under %g px² dropped, %d images without damage)",
             d.name, len(samples), n_small, min_area_px2, n_negative)
    return samples


def scan_folder_domain(domain_dir: str | Path, *, classes: list[str] | None = None) -> list[DamageSample]:
    """Whole-image samples of ``DOMAIN/CLASS/*.jpg|png``; ``classes`` restricts (and checks) the classes."""
    d = Path(domain_dir)
    class_dirs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is not None:
        class_dirs = [p for p in class_dirs if p.name in set(classes)]
    samples = []
    for cdir in class_dirs:
        for f in sorted(cdir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(DamageSample(f, cdir.name, d.name))
    return samples


def class_names(domains: dict[str, list[DamageSample]], *, classes: list[str] | None = None) -> list[str]:
    """The class list: ``classes`` if given, else the sorted union of labels (``background`` last)."""
    if classes:
        found = {s.label for samples in domains.values() for s in samples}
        return list(classes) + ([BACKGROUND] if BACKGROUND in found and BACKGROUND not in classes else [])
    found = sorted({s.label for samples in domains.values() for s in samples} - {BACKGROUND})
    has_bg = any(s.label == BACKGROUND for samples in domains.values() for s in samples)
    return found + ([BACKGROUND] if has_bg else [])


def load_crops(
    domains: dict[str, list[DamageSample]], *, classes: list[str], size_px: int = CROP_SIZE_PX
) -> CropArrays:
    """Read and resize every crop (each image file opened once). Returns :class:`CropArrays`."""
    from geodefect.progress import progress

    domain_names = list(domains)
    by_image: dict[Path, list[tuple[int, DamageSample]]] = {}
    flat = [s for name in domain_names for s in domains[name]]
    for k, s in enumerate(flat):
        by_image.setdefault(s.image, []).append((k, s))
    images = np.zeros((len(flat), 3, size_px, size_px), np.uint8)
    for path, items in progress(by_image.items(), total=len(by_image), desc="crops"):
        pixels = read_rgb(path)
        for k, s in items:
            images[k] = crop_resize(pixels, s.box, size_px=size_px)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({s.label for s in flat} - set(index))
    if unknown:
        raise InputError(f"samples have classes {unknown} that are not in the class list {classes}")
    labels = np.array([index[s.label] for s in flat], np.int64)
    dom = np.array([domain_names.index(s.domain) for s in flat], np.int64)
    return CropArrays(images, labels, dom, list(classes), domain_names, [str(s.image) for s in flat])


def read_rgb(path: str | Path) -> np.ndarray:
    """An image as (H, W, 3) uint8 (grey and RGBA converted), by the one image reader."""
    from geodefect.io.image import read_image_uint8, to_hwc

    return to_hwc(read_image_uint8(path, rgb=True))


def crop_resize(pixels: np.ndarray, box: tuple[float, float, float, float] | None, *, size_px: int) -> np.ndarray:
    """Crop a VOC box from (H, W, 3) uint8 and resize (bilinear) to (3, size_px, size_px) uint8."""
    from PIL import Image

    from geodefect.io.voc import box_to_pixel_slices

    if box is not None:
        rows, cols = box_to_pixel_slices(VocObject("", *box), width_px=pixels.shape[1], height_px=pixels.shape[0])
        pixels = pixels[rows, cols]
    if pixels.size == 0:
        return np.zeros((3, size_px, size_px), np.uint8)
    im = Image.fromarray(np.ascontiguousarray(pixels)).resize((size_px, size_px), Image.BILINEAR)
    return np.asarray(im).transpose(2, 0, 1).copy()


def describe_counts(crops: CropArrays) -> str:
    """``domain: class=n, ...`` lines for logs and reports."""
    lines = []
    for di, name in enumerate(crops.domain_names):
        c = Counter(crops.labels[crops.domains == di].tolist())
        lines.append(f"{name}: " + ", ".join(f"{crops.classes[k]}={c.get(k, 0)}" for k in range(len(crops.classes))))
    return "\n".join(lines)


def _rdd_dirs(d: Path) -> tuple[Path, Path] | None:
    for base in (d / "train", d):
        if (base / "annotations" / "xmls").is_dir():
            return base / "images", base / "annotations" / "xmls"
    return None


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def _background_boxes(rng, kept: list[VocObject], size: tuple[int, int], n: int) -> list[tuple[float, float, float, float]]:
    """Up to ``n`` random boxes (size of a random damage box) overlapping no damage box."""
    width, height = size
    out = []
    for _ in range(20 * n):
        if len(out) == n:
            break
        ref = kept[int(rng.integers(len(kept)))]
        w, h = min(ref.width_px, width - 1), min(ref.height_px, height - 1)
        x0 = float(rng.uniform(1, width - w))
        y0 = float(rng.uniform(1, height - h))
        box = (x0, y0, x0 + w, y0 + h)
        if not any(_overlaps(box, (o.xmin, o.ymin, o.xmax, o.ymax)) for o in kept):
            out.append(box)
    return out


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class CropDataset:
    """Map-style torch dataset over :class:`CropArrays`.

    Items are ``{"image": (3, S, S) float32 normalised with mean/std (0..255 scale),
    "label": int64, "domain": int64}``. ``augment`` adds random horizontal/vertical flips
    (damage classes are flip-invariant: a flipped transverse crack is still transverse), drawn
    from NumPy's global RNG, which the training loop seeds per sample (reproducible, resumable).
    """

    def __init__(self, crops: CropArrays, *, mean: list[float], std: list[float], augment: bool = False):
        self.crops = crops
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        import torch

        x = (self.crops.images[i].astype(np.float32) - self.mean) / self.std
        if self.augment:
            if np.random.random() < 0.5:
                x = x[:, :, ::-1]
            if np.random.random() < 0.5:
                x = x[:, ::-1, :]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x)),
            "label": torch.tensor(int(self.crops.labels[i])),
            "domain": torch.tensor(int(self.crops.domains[i])),
        }


def channel_stats(crops: CropArrays) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the crops on the 0..255 scale (std floored at 1)."""
    x = crops.images.astype(np.float64)
    mean = x.mean(axis=(0, 2, 3))
    std = np.maximum(x.std(axis=(0, 2, 3)), 1.0)
    return [float(v) for v in mean], [float(v) for v in std]
