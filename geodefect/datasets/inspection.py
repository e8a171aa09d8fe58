"""Torch-side datasets of inspection chips (written by :mod:`geodefect.inspection_chips`).

A sample is a dict of tensors:

* ``image``: ``(C, H, W) float32`` normalised with the chips' train mean/std (0..255 scale);
* segment tasks: ``mask`` ``(1, H, W) float32`` in {0, 1} (1 = crack / defect);
* ``crack_classify``: ``label`` ``() int64`` (1 = crack).

Chips smaller than the folder's ``chip_shape_px`` (at image edges) are padded at the bottom/
right with 0 (the mean after normalisation) and mask 0, so batches stack. Augmentation
(training only) uses NumPy's global RNG, which the training loop seeds per sample:
horizontal and vertical flips, and 90-degree rotations for square chips of crack tasks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


class InspectionChipDataset:
    """Map-style dataset over rows of ``index.csv``.

    Args:
        chips_dir: the chip folder.
        rows: its index rows to use (see :func:`geodefect.inspection_chips.read_index`).
        meta: its ``meta.json`` (task, chip_shape_px, mean, std).
        augment: random flips (and rot90 for square crack chips).
    """

    def __init__(self, chips_dir: str | Path, rows: list[dict], meta: dict, *, augment: bool = False) -> None:
        self.dir = Path(chips_dir)
        self.rows = list(rows)
        self.task = meta["task"]
        self.shape = tuple(meta["chip_shape_px"])
        self.mean = np.asarray(meta["mean"], np.float32)[:, None, None]
        self.std = np.asarray(meta["std"], np.float32)[:, None, None]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.rows)

    def labels(self) -> np.ndarray:
        """``(N,) int`` chip labels (1 = has defect pixels / crack)."""
        return np.array([r["label"] for r in self.rows], dtype=np.int64)

    def __getitem__(self, i: int) -> dict:
        import torch

        row = self.rows[i]
        image = (_read_png(self.dir / row["image"]).astype(np.float32) - self.mean) / self.std
        mask = None
        if self.task != "crack_classify":
            mask = (_read_png(self.dir / row["mask"])[:1] > 127).astype(np.float32)
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
        if self.task != "rail_segment" and image.shape[-1] == image.shape[-2]:
            k = int(np.random.randint(4))
            arrays = [np.rot90(a, k, axes=(-2, -1)) for a in arrays]
        return arrays[0], (arrays[1] if mask is not None else None)


def _pad_to(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pad ``(C, h, w)`` at the bottom/right with zeros to ``(C, *shape)``."""
    h, w = arr.shape[-2:]
    if (h, w) == tuple(shape):
        return arr
    out = np.zeros((arr.shape[0], *shape), dtype=arr.dtype)
    out[:, :h, :w] = arr
    return out
