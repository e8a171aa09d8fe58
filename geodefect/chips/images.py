"""Chips for the inspection tasks (tunnel cracks, rail defects) from image + mask folders.

Tasks and what a chip is:

* ``rail_segment``: horizontal strips of ``strip_height_px`` rows (paper: 100) taken every
  ``strip_stride_px`` rows down a long rail image, the full image width or, with
  ``strip_width_px``, a band of that width centred on the railhead (found as the brightest
  run of columns); image + 0/255 mask.
* ``crack_segment``: square windows of ``size_px`` (default 128) with ``stride_px`` (default
  ``size_px``), at native resolution; image + mask. Windows without defect pixels are kept with
  probability ``keep_empty`` (drawn per chip id with ``seed``, as road chipping does; default
  0.5 for ``crack_segment``, 1 = all for the other tasks): at 256 px not one CrackForest window
  is crack-free, at 128 px 43 % are, so a model also learns to leave crack-free windows empty.
* ``crack_classify``: windows of ``size_px`` (or the whole image when ``size_px`` is None),
  resized to ``input_px`` (paper: 224); label 1 (crack) when the window holds at least
  ``min_defect_px`` mask pixels.

Windows come from :mod:`geodefect.windows` (``axis_offsets``/``iter_windows``). The split is
by *source image* (no image is in both train and val). Mean and standard deviation per
channel (0..255 scale) of the train chips are saved in ``meta.json`` and reused by
training and inference.

Output folder::

    CHIPS/meta.json   {"task", "complete": true, "geodefect_version", "chip_shape_px": [h, w],
                       "channels", "mean", "std", "classes": ["background", <defect>],
                       "label": {"source": "masks"|"coco", "threshold": 127, "coco_categories"},
                       "windows": {...settings...}, "sources", "n_chips", "split": {"train", "val"}}
    CHIPS/index.csv   chip_id, image, mask, label, defect_px, source, row_off, col_off, height, width, split
    CHIPS/images/<chip_id>.png   uint8, grayscale (1 channel) or RGB
    CHIPS/masks/<chip_id>.png    uint8 0/255 (segment tasks)
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodefect.errors import ConfigError, InputError
from geodefect.io.image import read_image_uint8 as read_image_chw  # noqa: F401  (the one reader)
from geodefect.io.image import write_png
from geodefect.labels.defects import MASK_THRESHOLD, LabeledImage, read_label_mask

LAYOUTS = ("classify", "segment", "strips")
INDEX_FIELDS = ["chip_id", "image", "mask", "label", "defect_px", "source", "row_off", "col_off", "height", "width", "split"]


@dataclass(frozen=True)
class InspectionChipConfig:
    """Options of ``geodefect chip`` for image-folder tasks (see module docstring).

    ``task``, ``layout`` (classify | segment | strips), ``default_size_px`` and ``defect_class``
    are set by the task (:mod:`geodefect.tasks`), not by the user.

    Attributes:
        size_px, stride_px: crack windows: side and step in pixels (default: the task's: 128
            for crack_segment; the whole image for classification).
        input_px: crack_classify: model input side.
        min_defect_px: crack_classify: crack pixels for a chip to count as crack.
        strip_height_px: rail strips: height.
        strip_stride_px: rail strips: step between strips (default: the strip height).
        strip_width_px: rail strips: band width centred on the railhead (default: the image width).
        coco_category: COCO category names used as defects (default: all).
        keep_empty: share of defect-free windows kept, 0..1, drawn per chip id with --seed
            (default: the task's; 0.5 for crack_segment, 1 = all otherwise).
        group_sep: crops of one photo: images whose names agree up to the last occurrence of this
            string (e.g. - for CRACK500's 20160222_080933-101) are split together (default: by image).
    """

    task: str = ""
    layout: str = "segment"
    default_size_px: int | None = 256
    defect_class: str = "crack"
    size_px: int | None = None
    stride_px: int | None = None
    input_px: int = 224
    min_defect_px: int = 10
    strip_height_px: int = 100
    strip_stride_px: int | None = None
    strip_width_px: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    coco_category: tuple[str, ...] | list[str] | None = None
    keep_empty: float | None = None
    default_keep_empty: float = 1.0
    group_sep: str | None = None

    @property
    def keep_empty_share(self) -> float:
        """The share of defect-free windows kept (``keep_empty``, else the task's default)."""
        return float(self.default_keep_empty if self.keep_empty is None else self.keep_empty)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"`layout` must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"`val_fraction` must be in [0, 1), got {self.val_fraction!r}")
        if not 0 <= self.keep_empty_share <= 1:
            raise ConfigError(f"`keep_empty` must be in [0, 1] (share of defect-free windows kept), got {self.keep_empty!r}")
        for name in ("size_px", "stride_px", "strip_height_px", "strip_stride_px", "strip_width_px", "input_px"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class ChipWindow:
    """A chip's place in its source image (pixels)."""

    row_off: int
    col_off: int
    height: int
    width: int


def find_rail_columns(image: np.ndarray, *, width_px: int) -> tuple[int, int]:
    """Column range ``[c0, c1)`` of ``width_px`` centred on the railhead (brightest column run).

    The column-mean profile is smoothed and thresholded halfway between its 5th and 95th
    percentiles; the longest run above it is the rail.
    """
    from scipy.ndimage import uniform_filter1d

    rows = image.reshape(-1, image.shape[-1])  # (C x H, W): the column mean over bands and rows at once
    width = rows.shape[1]
    if width_px >= width:
        return 0, width
    # an integer sum is exact (the float mean of a 2048 x 2000 frame's rows took 10 ms, this 1 ms)
    profile = uniform_filter1d(np.add.reduce(rows, axis=0, dtype=np.int64) / rows.shape[0], 9)
    lo, hi = np.percentile(profile, [5, 95])
    above = np.concatenate([[False], profile > (lo + hi) / 2, [False]])
    edges = np.flatnonzero(np.diff(above.astype(int)))
    starts, ends = edges[0::2], edges[1::2]
    k = int(np.argmax(ends - starts)) if len(starts) else 0
    centre = (starts[k] + ends[k]) // 2 if len(starts) else width // 2
    c0 = int(np.clip(centre - width_px // 2, 0, width - width_px))
    return c0, c0 + width_px


def iter_chip_windows(image_shape: tuple[int, int], cfg: InspectionChipConfig, image: np.ndarray) -> Iterator[ChipWindow]:
    """The chip windows of one image (strips for rail, the window grid for cracks)."""
    from geodefect.windows import axis_offsets, iter_windows

    h, w = image_shape
    if cfg.layout == "strips":
        c0, c1 = (0, w) if cfg.strip_width_px is None else find_rail_columns(image, width_px=cfg.strip_width_px)
        size = cfg.strip_height_px
        for r in axis_offsets(h, size_px=size, stride_px=min(cfg.strip_stride_px or size, size)):
            yield ChipWindow(r, c0, min(size, h), c1 - c0)
        return
    size = cfg.size_px or cfg.default_size_px
    if size is None:
        yield ChipWindow(0, 0, h, w)
        return
    stride = min(cfg.stride_px or size, size)
    for win in iter_windows(h, w, size_px=size, stride_px=stride):
        yield ChipWindow(int(win.row_off), int(win.col_off), int(win.height), int(win.width))


def keeps_empty(chip_id: str, *, share: float, seed: int) -> bool:
    """Deterministic draw in [0, 1) per (seed, chip id), as road chipping: keep a defect-free chip?"""
    import zlib

    return share >= 1 or zlib.crc32(f"{seed}:{chip_id}".encode()) / 2**32 < share


def split_sources(stems: list[str], *, val_frac: float, seed: int, group_sep: str | None = None) -> dict[str, str]:
    """``stem -> "train"|"val"``: a seeded shuffle of source images, ``val_fraction`` of them to val
    (at least one when there are two or more images and ``val_fraction`` > 0).

    With ``group_sep``, the unit shuffled is the photo an image was cropped from: its name up to
    the last ``group_sep`` (overlapping crops of one photo never straddle the split).
    """
    groups = list(dict.fromkeys(s.rsplit(group_sep, 1)[0] if group_sep else s for s in stems))
    order = list(np.random.default_rng(seed).permutation(len(groups)))
    n_val = int(round(len(groups) * val_frac))
    if val_frac > 0 and len(groups) >= 2:
        n_val = min(max(n_val, 1), len(groups) - 1)
    val = {groups[i] for i in order[:n_val]}
    return {s: "val" if (s.rsplit(group_sep, 1)[0] if group_sep else s) in val else "train" for s in stems}


class ChannelStats:
    """Streaming per-channel mean/std (0..255 scale) of uint8 chips."""

    def __init__(self) -> None:
        self.n = 0
        self.total: np.ndarray | None = None
        self.total_sq: np.ndarray | None = None

    def add(self, chip: np.ndarray) -> None:
        flat = chip.reshape(chip.shape[0], -1).astype(np.float64)
        if self.total is None:
            self.total, self.total_sq = np.zeros(chip.shape[0]), np.zeros(chip.shape[0])
        self.total += flat.sum(1)
        self.total_sq += (flat**2).sum(1)
        self.n += flat.shape[1]

    def result(self) -> tuple[list[float], list[float]]:
        if not self.n:
            raise InputError("no training chips to compute normalisation statistics from; lower `val_fraction`")
        mean = self.total / self.n
        std = np.sqrt(np.maximum(self.total_sq / self.n - mean**2, 1e-6))
        return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def resize_chip(chip: np.ndarray, size_px: int) -> np.ndarray:
    """``(C, h, w) uint8`` -> ``(C, size, size) uint8`` (bilinear; the paper's 224 x 224 resize)."""
    from PIL import Image

    planes = [np.asarray(Image.fromarray(p).resize((size_px, size_px), Image.BILINEAR)) for p in chip]
    return np.stack(planes)


def chip_images(items: list[LabeledImage], out_dir: Path, cfg: InspectionChipConfig, *, label_source: str) -> dict:
    """Write chips of ``items`` into ``out_dir`` (an empty folder) and return the meta dict."""
    from geodefect import __version__
    from geodefect.progress import progress

    if not items:
        raise InputError("no images to chip; check the image folder")
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    segment = cfg.layout != "classify"
    if segment:
        (out_dir / "masks").mkdir(exist_ok=True)
    splits = split_sources([it.stem for it in items], val_frac=cfg.val_fraction, seed=cfg.seed, group_sep=cfg.group_sep)
    stats, rows, channels = ChannelStats(), [], None
    for item in progress(items, desc="chipping", unit="image"):
        image = read_image_chw(item.image)
        channels = channels or image.shape[0]
        if image.shape[0] != channels:
            raise InputError(f"image {str(item.image)!r} has {image.shape[0]} channels, the others {channels}; convert all to the same mode")
        mask = read_label_mask(item, height_px=image.shape[1], width_px=image.shape[2])
        for k, win in enumerate(iter_chip_windows(image.shape[1:], cfg, image)):
            rs, cs = slice(win.row_off, win.row_off + win.height), slice(win.col_off, win.col_off + win.width)
            chip, chip_mask = image[:, rs, cs], mask[rs, cs]
            defect_px = int(chip_mask.sum())
            chip_id = f"{item.stem}_{k:04d}"
            if not defect_px and not keeps_empty(chip_id, share=cfg.keep_empty_share, seed=cfg.seed):
                continue
            if not segment:
                chip = resize_chip(chip, cfg.input_px)
            write_png(out_dir / "images" / f"{chip_id}.png", chip)
            if segment:
                write_png(out_dir / "masks" / f"{chip_id}.png", (chip_mask * 255).astype(np.uint8)[None])
            if splits[item.stem] == "train":
                stats.add(chip)
            rows.append({
                "chip_id": chip_id, "image": f"images/{chip_id}.png", "mask": f"masks/{chip_id}.png" if segment else "",
                "label": int(defect_px >= max(cfg.min_defect_px, 1)), "defect_px": defect_px, "source": item.stem,
                **dataclasses.asdict(win), "split": splits[item.stem],
            })
    _write_index(out_dir / "index.csv", rows)
    mean, std = stats.result()
    return _meta(cfg, rows, items, channels, mean, std, label_source, __version__)


def _write_index(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _meta(cfg, rows, items, channels, mean, std, label_source, version) -> dict:
    if cfg.layout == "classify":
        shape = [cfg.input_px, cfg.input_px]
    else:
        shape = [int(max(r["height"] for r in rows)), int(max(r["width"] for r in rows))]
    n_train = sum(r["split"] == "train" for r in rows)
    return {
        "task": cfg.task, "complete": True, "geodefect_version": version, "chip_shape_px": shape,
        "channels": int(channels), "mean": mean, "std": std,
        "classes": ["background", cfg.defect_class],
        "label": {"source": label_source, "threshold": MASK_THRESHOLD,
                  "coco_categories": list(cfg.coco_category) if cfg.coco_category else None,
                  "min_defect_px": cfg.min_defect_px},
        "windows": {**{k: v for k, v in dataclasses.asdict(cfg).items()
                       if k not in ("coco_category", "layout", "default_size_px", "defect_class", "default_keep_empty")},
                    "keep_empty": cfg.keep_empty_share,
                    "size_px": cfg.size_px or (None if cfg.layout == "strips" else cfg.default_size_px)},  # as cut
        "sources": [str(it.image) for it in items], "n_chips": len(rows),
        "n_positive": int(sum(r["label"] for r in rows)),
        "split": {"train": n_train, "val": len(rows) - n_train,
                  "by": f"source photo (name up to the last {cfg.group_sep!r})" if cfg.group_sep else "source image"},
    }


def read_index(chips_dir: str | Path) -> list[dict]:
    """Rows of ``CHIPS/index.csv`` with integer fields converted."""
    path = Path(chips_dir) / "index.csv"
    if not path.is_file():
        raise InputError(f"chip folder {str(chips_dir)!r} has no index.csv; rerun `geodefect chip`")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("label", "defect_px", "row_off", "col_off", "height", "width"):
            r[k] = int(r[k])
    return rows


def write_meta(out_dir: Path, meta: dict) -> None:
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))


def chip_folder(images, out_dir, *, masks=None, coco=None, dataset=None, config_file=None, overrides=None,
                overwrite: bool = False) -> tuple[dict, int]:
    """Chip an image folder with a mask folder (``masks``) or COCO boxes (``coco``), atomically.

    ``dataset`` may name several catalog datasets (``"rail400_train,rail400_val"``): their images
    are chipped into one set (file stems must be unique across them) and split by image as one.
    ``overrides`` keys: the fields of :class:`InspectionChipConfig` (the task sets ``task``,
    ``layout``, ``default_size_px`` and ``defect_class``). Returns ``(meta, n_images)``.
    """
    from geodefect.config import resolve_config
    from geodefect.io.atomic import atomic_dir, check_output_free

    sources, defaults = _resolve_sources(images, masks, coco, dataset)
    overrides = {**defaults, **dict(overrides or {})}
    if overrides.get("coco_category"):
        overrides["coco_category"] = list(overrides["coco_category"])
    cfg = resolve_config(InspectionChipConfig, config_file, overrides)
    check_output_free(out_dir, overwrite=overwrite)
    items, source = _pair_sources(sources, cfg)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        meta = chip_images(items, tmp, cfg, label_source=source)
        write_meta(tmp, meta)
    return meta, len(items)


def _pair_sources(sources: list[tuple[Path, object, object]], cfg: InspectionChipConfig) -> tuple[list[LabeledImage], str]:
    """Labelled images of every ``(images_dir, masks, coco)`` source, with unique stems, and the label kind."""
    from geodefect.labels.defects import pair_coco, pair_masks

    kinds = {"masks" if m else "coco" for _, m, _ in sources}
    if len(kinds) > 1:
        raise InputError("the datasets label their images with both masks and COCO boxes; chip them separately")
    items: list[LabeledImage] = []
    for images_dir, m, c in sources:
        items += pair_masks(images_dir, m) if m else pair_coco(images_dir, c, categories=cfg.coco_category)
    stems = [it.stem for it in items]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(f"{len(dupes)} image names occur in more than one folder (first: {dupes[0]!r}); chips are "
                         "named by image stem: rename the images or chip the folders separately")
    return items, kinds.pop()


def _resolve_sources(images, masks, coco, dataset) -> tuple[list[tuple[Path, object, object]], dict]:
    """``([(images_dir, masks, coco), ...], config defaults)`` from CLI inputs or catalog dataset(s)."""
    names = [n.strip() for n in str(dataset).split(",") if n.strip()] if dataset else []
    if len(names) > 1:
        if masks or coco:
            from geodefect.errors import UsageError

            raise UsageError("--masks/--coco label ONE image folder; several --dataset names bring their own labels")
        resolved = [_resolve_sources(None, None, None, n) for n in names]
        return [src for srcs, _ in resolved for src in srcs], _same_defaults(names, [d for _, d in resolved])
    defaults: dict = {}
    if names:
        images, masks, coco, defaults = _dataset_sources(names[0], masks, coco)
    images = [images] if isinstance(images, str | Path) else list(images or [])
    if len(images) != 1 or not Path(images[0]).is_dir():
        raise InputError(
            f"inspection chipping takes ONE image folder, got {[str(p) for p in images]}; "
            "e.g. geodefect chip IMAGES_DIR --masks MASKS_DIR -o CHIPS (several: --dataset a,b)"
        )
    if bool(masks) == bool(coco):
        from geodefect.errors import UsageError

        raise UsageError("give exactly one label source: --masks MASKS_DIR or --coco FILE.json")
    return [(Path(images[0]), masks, coco)], defaults


def _dataset_sources(name: str, masks, coco):
    """``(images, masks, coco, config defaults)`` of one catalog dataset (CLI --masks/--coco win)."""
    from geodefect.catalog import get_dataset

    entry = get_dataset(name)
    pattern = str(entry.raw.get("images", "images/*"))
    images = entry.root / Path(pattern).parent
    _check_dataset_present(entry, images)
    masks = masks or (entry.root / entry.raw["masks"] if entry.raw.get("masks") else None)
    coco = coco or (entry.root / entry.raw["coco"] if entry.raw.get("coco") else None)
    defaults: dict = {}
    if entry.raw.get("coco_category"):
        defaults["coco_category"] = list(_as_list(entry.raw["coco_category"]))
    for key in ("size_px", "stride_px", "strip_height_px", "strip_stride_px", "strip_width_px", "input_px"):
        if entry.raw.get(key) is not None:
            defaults[key] = entry.raw[key]
    return images, masks, coco, defaults


def _same_defaults(names: list[str], defaults: list[dict]) -> dict:
    """The chip settings several datasets share; settings that differ between them are an error."""
    for key in sorted({k for d in defaults for k in d}):
        values = [d.get(key) for d in defaults]
        if any(v != values[0] for v in values[1:]):
            raise InputError(f"datasets {', '.join(names)} set `{key}` differently in the catalog ({values}); "
                             "chip them separately, or give them the same value in data_catalog.yaml")
    return defaults[0] if defaults else {}


def _check_dataset_present(entry, folder: Path) -> None:
    """A catalog dataset whose data are not where its root points: say where, and how to point there."""
    if folder.is_dir():
        return
    from geodefect.errors import InputFileNotFoundError

    raise InputFileNotFoundError(
        f"dataset {entry.name!r}: its images were expected in {str(folder)!r}, which does not exist "
        f"(catalog root {entry.raw.get('root')!r}); download the data there, or set GEODEFECT_DATA "
        "(for {data}) / GEODEFECT_CATALOG (another catalog) to where it is"
        + (f"; layout: {entry.description}" if entry.description else "")
    )


def _as_list(value):
    return [value] if isinstance(value, str) else list(value)


