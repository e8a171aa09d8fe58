"""Road chip dataset on real `geodefect chip` output of a small synthetic scene."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geodefect.datasets.roads import RoadChipDataset, read_chip_index
from geodefect.datasets.transforms import RoadAugment
from geodefect.errors import InputError, InputFileNotFoundError


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    from geodefect.testing.scenes import make_road_scene
    from geodefect.workflows.chip import chip

    root = tmp_path_factory.mktemp("roadchips")
    scene = make_road_scene(root / "scene", size_px=256, seed=1)
    chip([scene.image], root / "chips", centerlines=scene.centerlines,
         overrides={"size_px": 32, "stride_px": 32, "keep_empty": 1.0, "val_fraction": 0.3})
    return root / "chips"


def test_splits_follow_the_index(chips):
    index = read_chip_index(chips)
    train, val = RoadChipDataset(chips, split="train"), RoadChipDataset(chips, split="val")
    assert len(train) == (index["split"] == "train").sum() > 0
    assert len(val) == (index["split"] == "val").sum() > 0
    assert not set(train.chip_ids) & set(val.chip_ids)


def test_sample_shapes_dtypes_and_normalisation(chips):
    ds = RoadChipDataset(chips, split="train")
    meta = json.loads((chips / "meta.json").read_text())
    sample = ds[0]
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert sample["road"].shape == (1, 32, 32) and set(sample["road"].unique().tolist()) <= {0.0, 1.0}
    assert sample["orientation"].shape == (32, 32) and sample["orientation"].dtype == torch.int64
    assert 0 <= sample["orientation"].min() and sample["orientation"].max() < meta["orientation"]["n_classes"]
    raw = ds.read_raw(0)[0].astype(np.float32)
    restored = sample["image"].numpy() * np.array(meta["std"]).reshape(3, 1, 1) + np.array(meta["mean"]).reshape(3, 1, 1)
    np.testing.assert_allclose(restored, raw, atol=1e-3)
    stacked = torch.stack([ds[i]["image"] for i in range(len(ds))])
    assert abs(float(stacked.mean())) < 0.5  # normalised with the folder's own statistics


def test_augmentation_uses_the_global_rng_reproducibly(chips):
    ds = RoadChipDataset(chips, split="train", augment=RoadAugment(bin_deg=20))
    np.random.seed(5)
    a = ds[3]
    np.random.seed(5)
    b = ds[3]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["orientation"], b["orientation"])


def test_bad_folders_are_clear_errors(chips, tmp_path):
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        RoadChipDataset(tmp_path / "missing", split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no meta.json"):
        RoadChipDataset(tmp_path / "empty", split="train")
    other = tmp_path / "cracks"
    other.mkdir()
    (other / "meta.json").write_text(json.dumps({"task": "crack_segment", "complete": True}))
    with pytest.raises(InputError, match="crack_segment"):
        RoadChipDataset(other, split="train")
    meta = json.loads((chips / "meta.json").read_text())
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "meta.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(InputError, match="incomplete"):
        RoadChipDataset(partial, split="train")
    (partial / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="index.gpkg"):
        RoadChipDataset(partial, split="train")
    with pytest.raises(InputError, match="split"):
        RoadChipDataset(chips, split="test")
