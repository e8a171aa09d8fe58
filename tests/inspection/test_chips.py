"""Inspection chipping: rail strips, crack windows and whole-image classification chips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from geodefect.chips.images import InspectionChipConfig, find_rail_columns, split_sources
from geodefect.errors import ConfigError, InputError
from geodefect.testing.cracks import make_crack_dataset
from geodefect.testing.rail import make_rail_dataset
from geodefect.workflows.chip import chip


def _index(folder):
    with (folder / "index.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_rail_strips_cover_the_image_and_keep_masks(tmp_path):
    d = make_rail_dataset(tmp_path / "rail", n_images=3, height_px=250, width_px=55, seed=0)
    out = tmp_path / "chips"
    meta = chip(d.images, out, masks=d.masks, overrides={"task": "rail_segment", "strip_height_px": 100})
    rows = _index(out)
    # rows 0, 100 and the last strip snapped to the edge (150) -> 3 strips per image
    assert len(rows) == 9 and meta["n_chips"] == 9
    assert sorted({int(r["row_off"]) for r in rows}) == [0, 100, 150]
    assert meta["chip_shape_px"] == [100, 55] and meta["channels"] == 1
    assert json.loads((out / "meta.json").read_text())["complete"] is True
    for r in rows:
        src = np.asarray(Image.open(d.masks / f"{r['source']}.png")) > 127
        chip_mask = np.asarray(Image.open(out / r["mask"])) > 127
        r0 = int(r["row_off"])
        assert np.array_equal(chip_mask, src[r0:r0 + 100])
        assert int(r["defect_px"]) == chip_mask.sum()


def test_train_stats_and_split_by_image(tmp_path):
    d = make_rail_dataset(tmp_path / "rail", n_images=5, height_px=200, width_px=40, seed=2)
    out = tmp_path / "chips"
    meta = chip(d.images, out, masks=d.masks, overrides={"task": "rail_segment", "val_fraction": 0.4})
    rows = _index(out)
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_source.values())  # an image is never in both splits
    assert sum(s == {"val"} for s in by_source.values()) == 2
    train = np.concatenate([np.asarray(Image.open(out / r["image"])).ravel() for r in rows if r["split"] == "train"])
    assert meta["mean"][0] == pytest.approx(train.mean(), abs=1e-3)
    assert meta["std"][0] == pytest.approx(train.std(), abs=1e-2)


def test_rail_band_is_found_in_wide_frames():
    img = np.full((1, 50, 400), 20, np.uint8)
    img[:, :, 250:310] = 200
    c0, c1 = find_rail_columns(img, width_px=100)
    assert c1 - c0 == 100 and c0 <= 250 and c1 >= 310


def test_rail_band_of_grey_and_rgb_frames_is_that_of_the_float_column_mean():
    from scipy.ndimage import uniform_filter1d

    rng = np.random.default_rng(2)
    for bands in (1, 3):
        img = rng.integers(0, 120, (bands, 60, 300)).astype(np.uint8)
        img[:, :, rng.integers(40, 200):][:, :, :50] += 100
        profile = uniform_filter1d(img.mean(axis=0).mean(axis=0), 9)  # the definition, in floats
        above = profile > sum(np.percentile(profile, [5, 95])) / 2
        c0, c1 = find_rail_columns(img, width_px=80)
        assert c1 - c0 == 80 and above[c0:c1].sum() == above.sum()  # the band holds the whole bright run


def test_coco_boxes_become_weak_masks(tmp_path):
    d = make_rail_dataset(tmp_path / "rail", n_images=2, height_px=200, width_px=64, seed=3)
    out = tmp_path / "chips"
    meta = chip(d.images, out, coco=d.coco, overrides={"coco_category": ["defect"]})
    assert meta["task"] == "rail_segment" and meta["label"]["source"] == "coco"
    n_defect_px = sum(int(r["defect_px"]) for r in _index(out))
    true_px = sum((np.asarray(Image.open(p)) > 127).sum() for p in d.masks.iterdir())
    assert n_defect_px >= true_px  # filled boxes contain the blobs


def test_crack_windows_and_classify_chips(tmp_path):
    d = make_crack_dataset(tmp_path / "c", n_images=4, height_px=80, width_px=120, seed=1)
    seg = chip(d.images, tmp_path / "seg", masks=d.masks, overrides={"task": "crack_segment", "size_px": 64, "stride_px": 48,
                                                                "keep_empty": 1.0})
    assert seg["chip_shape_px"] == [64, 64] and seg["n_chips"] == 4 * 2 * 3
    cls = chip(d.images, tmp_path / "cls", masks=d.masks, overrides={"task": "crack_classify", "input_px": 32})
    rows = _index(tmp_path / "cls")
    assert cls["n_chips"] == 4 and cls["chip_shape_px"] == [32, 32]
    labels = {r["source"]: int(r["label"]) for r in rows}
    for stem, label in labels.items():
        assert label == int((np.asarray(Image.open(d.masks / f"{stem}.png")) > 127).sum() >= 10)
    assert np.asarray(Image.open(tmp_path / "cls" / rows[0]["image"])).shape == (32, 32, 3)


def test_chip_errors(tmp_path):
    d = make_crack_dataset(tmp_path / "c", n_images=2, height_px=32, width_px=32, seed=1)
    with pytest.raises(InputError, match="exactly one label source"):
        chip(d.images, tmp_path / "x", task="crack_segment", overrides={})
    with pytest.raises(ConfigError, match="valid keys"):
        chip(d.images, tmp_path / "x", masks=d.masks, overrides={"buffer_m": 2})
    chip(d.images, tmp_path / "ok", masks=d.masks, overrides={"size_px": 32})
    from geodefect.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        chip(d.images, tmp_path / "ok", masks=d.masks, overrides={"size_px": 32})


def test_split_sources_keeps_one_of_each():
    s = split_sources(["a", "b"], val_frac=0.1, seed=0)
    assert sorted(s.values()) == ["train", "val"]
    with pytest.raises(ConfigError):
        InspectionChipConfig(layout="rail")


def test_keep_empty_share_of_crack_free_windows(tmp_path):
    """crack_segment keeps a seeded share of crack-free windows; 1 keeps all, 0 none."""
    d = make_crack_dataset(tmp_path / "c", n_images=6, height_px=160, width_px=160, seed=5)
    over = {"task": "crack_segment", "size_px": 32}
    all_meta = chip(d.images, tmp_path / "all", masks=d.masks, overrides={**over, "keep_empty": 1.0})
    n_empty = sum(int(r["defect_px"]) == 0 for r in _index(tmp_path / "all"))
    assert 10 < n_empty < all_meta["n_chips"]  # the grid has crack-free windows to keep or drop
    none = chip(d.images, tmp_path / "none", masks=d.masks, overrides={**over, "keep_empty": 0.0})
    assert all(int(r["defect_px"]) > 0 for r in _index(tmp_path / "none"))
    assert none["n_chips"] == all_meta["n_chips"] - n_empty
    default = chip(d.images, tmp_path / "default", masks=d.masks, overrides=over)
    kept = sum(int(r["defect_px"]) == 0 for r in _index(tmp_path / "default"))
    assert default["windows"]["keep_empty"] == 0.5 and 0.25 * n_empty < kept < 0.75 * n_empty
    chip(d.images, tmp_path / "again", masks=d.masks, overrides=over)
    assert _index(tmp_path / "again") == _index(tmp_path / "default")  # the draw is seeded
    rail = InspectionChipConfig(task="rail_segment", layout="strips")
    assert rail.keep_empty_share == 1.0  # other tasks keep every window


def test_keep_empty_outside_0_1_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="keep_empty"):
        InspectionChipConfig(keep_empty=1.5)


def test_group_sep_keeps_crops_of_one_photo_on_one_side():
    stems = [f"photo{p}-{k}" for p in range(10) for k in range(5)] + ["single"]
    split = split_sources(stems, val_frac=0.3, seed=1, group_sep="-")
    by_photo: dict[str, set] = {}
    for s, side in split.items():
        by_photo.setdefault(s.rsplit("-", 1)[0], set()).add(side)
    assert all(len(sides) == 1 for sides in by_photo.values())
    assert sum(sides == {"val"} for sides in by_photo.values()) == 3  # 30 % of the 11 photos
    plain = split_sources(stems, val_frac=0.3, seed=1)
    assert any(len({plain[f"photo{p}-{k}"] for k in range(5)}) == 2 for p in range(10))  # by image: crops straddle
