"""Road chips written by ``geodefect chip`` as training samples.

A sample is ``{"image": (C,H,W) float32 normalised with meta.json mean/std,
"road": (1,H,W) float32 0/1, "orientation": (H,W) int64 bin (0 = background)}``.
Decoded uint8 chips are cached in memory (bounded by ``cache_mb``), so after the first
epoch no file is read: the chips are small and training is compute-bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geodefect.errors import InputError

SPLITS = ("train", "val")


ROAD_META_KEYS = ("size_px", "bands", "mean", "std", "orientation")


def read_road_meta(chips_dir: str | Path) -> dict:
    """meta.json of a road chip folder with the keys road datasets need (the task checks whose chips they are)."""
    from geodefect.chips.meta import read_chip_meta

    meta = read_chip_meta(chips_dir, required=ROAD_META_KEYS)
    if not meta.get("complete"):
        raise InputError(f"chip folder {str(chips_dir)!r} is incomplete (chipping was interrupted); "
                         "rerun the same `geodefect chip` command to finish it")
    return meta


def read_chip_index(chips_dir: str | Path):
    """The ``chips`` layer of ``index.gpkg`` as a DataFrame (no geometry)."""
    import pyogrio

    path = Path(chips_dir) / "index.gpkg"
    if not path.is_file():
        raise InputError(f"chip folder {str(chips_dir)!r} has no index.gpkg; rerun `geodefect chip --overwrite`")
    df = pyogrio.read_dataframe(path, layer="chips", read_geometry=False)
    missing = {"chip_id", "image", "label", "orientation", "split"} - set(df.columns)
    if missing:
        raise InputError(f"{str(path)!r} lacks columns {', '.join(sorted(missing))}; rerun `geodefect chip --overwrite`")
    return df


class RoadChipDataset:
    """One split of a road chip folder.

    Args:
        chips_dir: the folder written by ``geodefect chip``.
        split: ``train`` or ``val``.
        augment: a :class:`~geodefect.datasets.transforms.RoadAugment` or None. It draws
            from ``np.random`` (seeded per sample by the training loop).
        cache_mb: keep decoded chips in memory up to this many MiB (0 = never cache).
    """

    def __init__(self, chips_dir: str | Path, *, split: str, augment=None, cache_mb: float = 2048) -> None:
        if split not in SPLITS:
            raise InputError(f"`split` must be one of {', '.join(SPLITS)}, got {split!r}")
        self.root = Path(chips_dir)
        self.meta = read_road_meta(chips_dir)
        index = read_chip_index(chips_dir)
        rows = index[index["split"] == split]
        self.chip_ids = rows["chip_id"].tolist()
        self.files = list(zip(rows["image"], rows["label"], rows["orientation"], strict=True))
        n_bands = len(self.meta["bands"])
        self.mean = np.asarray(self.meta["mean"], np.float32).reshape(-1, 1, 1)
        self.std = np.maximum(np.asarray(self.meta["std"], np.float32).reshape(-1, 1, 1), 1e-3)
        if self.mean.shape[0] != n_bands:
            raise InputError(f"meta.json has {self.mean.shape[0]} band means for {n_bands} bands; rerun `geodefect chip`")
        self.augment = augment
        chip_mb = (n_bands + 2) * self.meta["size_px"] ** 2 / 2**20
        self.cache_limit = int(cache_mb // max(chip_mb, 1e-9))
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def read_raw(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 ``image (C,H,W)``, ``road (1,H,W)``, ``orientation (H,W)`` of chip ``i``."""
        if i in self._cache:
            return self._cache[i]
        import rasterio

        image_rel, label_rel, orient_rel = self.files[i]
        try:
            with rasterio.open(self.root / image_rel) as src:
                image = src.read()
            with rasterio.open(self.root / label_rel) as src:
                road = src.read(1)[None]
            with rasterio.open(self.root / orient_rel) as src:
                orient = src.read(1)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"chip {self.chip_ids[i]!r} of {str(self.root)!r} cannot be read ({exc}); "
                             "rerun `geodefect chip --overwrite`") from None
        raw = (image, road, orient)
        if len(self._cache) < self.cache_limit:
            self._cache[i] = raw
        return raw

    def __getitem__(self, i: int) -> dict:
        import torch

        image, road, orient = self.read_raw(i)
        image = image.astype(np.float32)
        if self.augment is not None:
            rng = np.random.default_rng(np.random.randint(0, 2**31))
            image, road, orient = self.augment(image, road, orient, rng)
        image = (image - self.mean) / self.std
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "road": torch.from_numpy(np.ascontiguousarray(road, dtype=np.float32)),
            "orientation": torch.from_numpy(np.ascontiguousarray(orient, dtype=np.int64)),
        }
