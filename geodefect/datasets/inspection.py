"""Torch-side datasets of inspection chips (written by :mod:`geodefect.chips.images`).

A sample is a dict of tensors:

* ``image``: ``(C, H, W) float32`` normalised with the chips' train mean/std (0..255 scale);
* segment tasks: ``mask`` ``(1, H, W) float32`` in {0, 1} (1 = crack / defect);
* ``crack_classify``: ``label`` ``() int64`` (1 = crack).

Chips smaller than the folder's ``chip_shape_px`` (images smaller than the window) are padded
at the bottom/right by reflection, image and mask alike, so batches stack: a flat grey border
taught models to draw cracks along it, a mirrored one is more of the same surface. Augmentation
(training only) uses NumPy's global RNG, which the training loop seeds per sample:
horizontal and vertical flips, and 90-degree rotations for square chips of crack tasks.

Two training-only options for the rare defects of rail strips, both drawn from that seeded
RNG (so runs stay reproducible and resumable):

* ``defect_share`` p > 0: each sample is a random defect chip (label 1) with probability p,
  else a chip without defects - the sample at index ``i`` when it has none, else a random
  one. Batches then hold a share p of defect chips in expectation, whatever the data's share.
* ``crop_width_px``: a random crop of that many columns (Kim et al. train on 100x160 crops of
  their strips); a crop of a defect chip always contains a defect column.

Scale augmentation (``scale_range`` r > 1, training only): each chip is resized by a factor
drawn log-uniformly in [1/r, r] (image bilinear with antialiasing, mask bilinear >= 0.5), then
cut (random crop) or reflection-padded back to the chip shape: crack widths differ by an order
of magnitude between sources, and a model that saw one width calls wider cracks background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _read_png(path: Path) -> np.ndarray:
    from geodefect.io.image import read_image

    return read_image(path)


class InspectionChipDataset:
    """Map-style dataset over rows of ``index.csv``.

    Args:
        chips_dir: the chip folder.
        rows: its index rows to use (see :func:`geodefect.chips.images.read_index`).
        meta: its ``meta.json`` (task, chip_shape_px, mean, std).
        augment: random flips (and rot90 for square crack chips).
        defect_share: probability that a sample is a defect chip (0 = the data's own share).
        crop_width_px: random crops of this width (None = whole chips).
        rotate90: also rotate square chips by multiples of 90 degrees when augmenting (not for
            rail strips, whose rail runs vertically).
        scale_range: when augmenting, resize by a factor in [1/scale_range, scale_range]
            (log-uniform); 1 = off.

    Chips with a ``mask`` column give ``{"image", "mask"}`` samples; classification chips
    (no mask) give ``{"image", "label"}``.
    """

    def __init__(self, chips_dir: str | Path, rows: list[dict], meta: dict, *, augment: bool = False,
                 defect_share: float = 0.0, crop_width_px: int | None = None, rotate90: bool = True,
                 scale_range: float = 1.0) -> None:
        self.dir = Path(chips_dir)
        self.rows = list(rows)
        self.has_masks = any(r.get("mask") for r in self.rows)
        self.rotate90 = rotate90
        self.shape = tuple(meta["chip_shape_px"])
        self.mean = np.asarray(meta["mean"], np.float32)[:, None, None]
        self.std = np.asarray(meta["std"], np.float32)[:, None, None]
        self.augment = augment
        self.defect_share = float(defect_share)
        self.crop_width_px = crop_width_px
        self.scale_range = float(scale_range)
        if crop_width_px is not None and crop_width_px < self.shape[1]:
            self.shape = (self.shape[0], int(crop_width_px))
        labels = self.labels()
        self.positives, self.negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
        if self.defect_share and (not len(self.positives) or not len(self.negatives)):
            self.defect_share = 0.0  # nothing to rebalance

    def __len__(self) -> int:
        return len(self.rows)

    def labels(self) -> np.ndarray:
        """``(N,) int`` chip labels (1 = has defect pixels / crack)."""
        return np.array([r["label"] for r in self.rows], dtype=np.int64)

    def resample_index(self, i: int) -> int:
        """The chip drawn for sample ``i`` under ``defect_share`` (uses NumPy's global RNG)."""
        if not self.defect_share:
            return i
        if np.random.random() < self.defect_share:
            return int(self.positives[np.random.randint(len(self.positives))])
        return i if self.rows[i]["label"] == 0 else int(self.negatives[np.random.randint(len(self.negatives))])

    def __getitem__(self, i: int) -> dict:
        import torch

        row = self.rows[self.resample_index(i)]
        image = (_read_png(self.dir / row["image"]).astype(np.float32) - self.mean) / self.std
        mask = None
        if self.has_masks:
            mask = (_read_png(self.dir / row["mask"])[:1] > 127).astype(np.float32)
            if self.crop_width_px is not None:
                image, mask = _crop_columns(image, mask, self.crop_width_px)
            if self.augment and self.scale_range > 1:
                image, mask = rescale_chip(image, mask, self.shape, scale_range=self.scale_range)
            image, mask = _pad_to(image, self.shape), _pad_to(mask, self.shape)
        if self.augment:
            image, mask = self._augment(image, mask)
        sample = {"image": torch.from_numpy(np.ascontiguousarray(image))}
        if mask is None:
            sample["label"] = torch.tensor(row["label"], dtype=torch.int64)
        else:
            sample["mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        return sample

    def _augment(self, image: np.ndarray, mask: np.ndarray | None):
        arrays = [image] if mask is None else [image, mask]
        if np.random.random() < 0.5:
            arrays = [a[..., ::-1] for a in arrays]
        if np.random.random() < 0.5:
            arrays = [a[..., ::-1, :] for a in arrays]
        if self.rotate90 and image.shape[-1] == image.shape[-2]:
            k = int(np.random.randint(4))
            arrays = [np.rot90(a, k, axes=(-2, -1)) for a in arrays]
        return arrays[0], (arrays[1] if mask is not None else None)


def _crop_columns(image: np.ndarray, mask: np.ndarray, width_px: int) -> tuple[np.ndarray, np.ndarray]:
    """A random ``width_px``-column crop of ``(C, H, W)`` image and mask; it holds a defect column if any."""
    w = image.shape[-1]
    if width_px >= w:
        return image, mask
    columns = np.flatnonzero(mask.any(axis=(0, 1)))
    if len(columns):
        c = int(columns[np.random.randint(len(columns))])
        c0 = np.random.randint(max(0, c - width_px + 1), min(c, w - width_px) + 1)
    else:
        c0 = np.random.randint(w - width_px + 1)
    return image[..., c0:c0 + width_px], mask[..., c0:c0 + width_px]


def rescale_chip(image: np.ndarray, mask: np.ndarray, shape: tuple[int, int], *,
                 scale_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``(C, h, w)`` image and ``(1, h, w)`` mask by a random factor in [1/r, r], back to ``shape``.

    The factor is log-uniform (NumPy's global RNG); the resized pair is randomly cropped to
    ``shape`` when larger and reflection-padded when smaller (see :func:`_pad_to`).
    """
    import torch
    import torch.nn.functional as F

    factor = float(np.exp(np.random.uniform(-np.log(scale_range), np.log(scale_range))))
    h, w = image.shape[-2:]
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    img = F.interpolate(torch.from_numpy(np.ascontiguousarray(image))[None], size=size, mode="bilinear",
                        align_corners=False, antialias=factor < 1)[0].numpy()
    msk = F.interpolate(torch.from_numpy(np.ascontiguousarray(mask))[None], size=size, mode="bilinear",
                        align_corners=False)[0].numpy()
    msk = (msk >= 0.5).astype(np.float32)
    r0 = np.random.randint(max(size[0] - shape[0], 0) + 1)
    c0 = np.random.randint(max(size[1] - shape[1], 0) + 1)
    img, msk = img[:, r0:r0 + shape[0], c0:c0 + shape[1]], msk[:, r0:r0 + shape[0], c0:c0 + shape[1]]
    return _pad_to(img, shape), _pad_to(msk, shape)


def _pad_to(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pad ``(C, h, w)`` at the bottom/right by reflection to ``(C, *shape)`` (larger parts are cut)."""
    h, w = arr.shape[-2:]
    if (h, w) == tuple(shape):
        return arr
    arr = arr[:, : shape[0], : shape[1]]
    widths = ((0, 0), (0, shape[0] - arr.shape[1]), (0, shape[1] - arr.shape[2]))
    return np.pad(arr, widths, mode="reflect")
