"""Synthetic crack and rail generators: deterministic, masks where the defects are, boxes that fit."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from scipy.ndimage import label

from geodefect.testing.cracks import make_crack_dataset, make_crack_image
from geodefect.testing.rail import make_rail_dataset, make_rail_image


def test_crack_image_is_deterministic_and_thin():
    a = make_crack_image(height_px=96, width_px=128, seed=5)
    b = make_crack_image(height_px=96, width_px=128, seed=5)
    c = make_crack_image(height_px=96, width_px=128, seed=6)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (96, 128, 3) and a.image.dtype == np.uint8
    frac = (a.mask > 127).mean()
    assert 0.002 < frac < 0.08  # thin: a few percent of pixels at most
    assert set(np.unique(a.mask)) <= {0, 255}


def test_crack_is_darker_than_its_surroundings_but_low_contrast():
    s = make_crack_image(height_px=128, width_px=128, distractors=False, seed=1)
    grey = s.image.mean(axis=2)
    crack = s.mask > 127
    diff = grey[~crack].mean() - grey[crack].mean()
    assert 10 < diff < 80


def test_no_crack_image_has_empty_mask():
    s = make_crack_image(height_px=64, width_px=64, has_crack=False, seed=2)
    assert not s.has_crack and s.mask.max() == 0


def test_crack_dataset_writes_pairs_and_labels(tmp_path):
    d = make_crack_dataset(tmp_path, n_images=6, height_px=48, width_px=64, crack_frac=0.5, seed=0)
    images = sorted(p.name for p in d.images.iterdir())
    masks = sorted(p.name for p in d.masks.iterdir())
    assert images == masks and len(images) == 6
    rows = d.labels_csv.read_text().splitlines()[1:]
    flags = {r.split(",")[0]: int(r.split(",")[1]) for r in rows}
    assert sum(flags.values()) == 3
    for name, flag in flags.items():
        mask = np.asarray(Image.open(d.masks / name))
        assert bool(mask.max() > 127) == bool(flag)


def test_rail_image_boxes_cover_the_defects():
    s = make_rail_image(height_px=300, width_px=80, n_defects=3, n_dirt=1, seed=4)
    assert s.image.shape == (300, 80) and s.image.dtype == np.uint8
    defect_boxes = [b for b in s.boxes if b[4] == "defect"]
    assert len(defect_boxes) == 3
    mask = s.mask > 127
    inside = np.zeros_like(mask)
    for x, y, w, h, _ in defect_boxes:
        inside[int(y):int(y + h), int(x):int(x + w)] = True
    assert mask.any() and not (mask & ~inside).any()
    # defects are dark spots on the bright railhead
    assert s.image[mask].mean() < np.percentile(s.image, 90) - 40


def test_rail_dataset_coco_is_consistent(tmp_path):
    d = make_rail_dataset(tmp_path, n_images=3, height_px=200, width_px=64, seed=1)
    coco = json.loads(d.coco.read_text())
    assert {c["name"] for c in coco["categories"]} == {"defect", "dirt"}
    assert len(coco["images"]) == 3
    for img in coco["images"]:
        mask = np.asarray(Image.open(d.masks / img["file_name"])) > 127
        n_components = label(mask, structure=np.ones((3, 3)))[1]
        n_defect_boxes = sum(1 for a in coco["annotations"] if a["image_id"] == img["id"] and a["category_id"] == 1)
        assert n_defect_boxes >= 1
        assert n_components <= n_defect_boxes  # overlapping spots may merge, never split
