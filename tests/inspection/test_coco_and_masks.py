"""COCO reader, mask conventions (threshold 127, RGB), boxes as weak masks, image/mask pairing errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.io.coco import read_coco
from geodefect.labels.defects import binarize_mask, boxes_to_mask, pair_coco, pair_masks, read_mask


def _coco(tmp_path, **changes):
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
        "categories": [{"id": 1, "name": "defect"}, {"id": 2, "name": "dirt"}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": [2.25, 1.5, 3.5, 2.0], "area": 7.0, "iscrowd": 0},
            {"id": 8, "image_id": 1, "category_id": 2, "bbox": [10, 0, 5, 5]},
        ],
    }
    data.update(changes)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    return path


def test_read_coco_is_exact(tmp_path):
    coco = read_coco(_coco(tmp_path))
    assert coco.categories == {1: "defect", 2: "dirt"}
    assert coco.images[1].width == 20 and coco.images[1].file_name == "a.jpg"
    assert coco.annotations[0].bbox == (2.25, 1.5, 3.5, 2.0)
    assert [a.id for a in coco.boxes_by_image(["defect"])[1]] == [7]
    assert len(coco.boxes_by_image(None)[1]) == 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"annotations": [{"id": 1, "image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1]}]}, "image id 9"),
        ({"annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}]}, "category id 5"),
        ({"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
                          {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]}, "not unique"),
        ({"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]}]}, "w, h >= 0"),
    ],
)
def test_read_coco_rejects_inconsistent_files(tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        read_coco(_coco(tmp_path, **change))


def test_unknown_category_lists_the_files_categories(tmp_path):
    coco = read_coco(_coco(tmp_path))
    with pytest.raises(InputError, match="defect, dirt"):
        coco.category_ids(["scratch"])


def test_missing_coco_file(tmp_path):
    with pytest.raises(InputFileNotFoundError):
        read_coco(tmp_path / "none.json")


def test_boxes_to_mask_uses_pixel_centres():
    mask = boxes_to_mask([(2.25, 1.5, 3.5, 2.0)], height_px=10, width_px=20)
    rows, cols = np.nonzero(mask)
    # centres c+0.5 in [2.25, 5.75) -> columns 2..5; r+0.5 in [1.5, 3.5) -> rows 1..2
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 2, 2, 5)
    tiny = boxes_to_mask([(3.1, 3.1, 0.2, 0.2)], height_px=10, width_px=10)
    assert tiny.sum() == 1  # a non-empty box marks at least one pixel
    clipped = boxes_to_mask([(-5, -5, 8, 8)], height_px=4, width_px=4)
    assert clipped.sum() == 9


def test_binarize_threshold_127_and_rgb():
    grey = np.array([[0, 127, 128, 255]], np.uint8)
    assert binarize_mask(grey).tolist() == [[False, False, True, True]]
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 1, 0] = 200  # a red crack counts
    assert binarize_mask(rgb).tolist() == [[False, True]]


def test_read_mask_rgb_png(tmp_path):
    arr = np.zeros((4, 5, 3), np.uint8)
    arr[1:3, 2] = (255, 255, 255)
    Image.fromarray(arr).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").sum() == 2


def _write(folder, name, shape):
    folder.mkdir(exist_ok=True)
    Image.fromarray(np.zeros(shape, np.uint8)).save(folder / name)


def test_pair_masks_by_stem(tmp_path):
    for n in ("001", "002"):
        _write(tmp_path / "images", f"{n}.jpg", (8, 6))
        _write(tmp_path / "masks", f"{n}.png", (8, 6))
    pairs = pair_masks(tmp_path / "images", tmp_path / "masks")
    assert [(p.image.name, p.mask.name) for p in pairs] == [("001.jpg", "001.png"), ("002.jpg", "002.png")]


def test_pair_masks_names_mismatched_files(tmp_path):
    _write(tmp_path / "images", "001.jpg", (8, 6))
    _write(tmp_path / "images", "002.jpg", (8, 6))
    _write(tmp_path / "masks", "001.png", (8, 6))
    _write(tmp_path / "masks", "003.png", (8, 6))
    with pytest.raises(InputError, match="002") as err:
        pair_masks(tmp_path / "images", tmp_path / "masks")
    assert "003" in str(err.value)


def test_pair_masks_names_size_mismatch(tmp_path):
    _write(tmp_path / "images", "001.jpg", (8, 6))
    _write(tmp_path / "masks", "001.png", (8, 7))
    with pytest.raises(InputError, match=r"001\.jpg.*6x8.*001\.png.*7x8"):
        pair_masks(tmp_path / "images", tmp_path / "masks")


def test_pair_coco_checks_names_and_sizes(tmp_path):
    coco = _coco(tmp_path)
    _write(tmp_path / "images", "a.jpg", (10, 20))
    items = pair_coco(tmp_path / "images", coco, categories=["defect"])
    assert items[0].boxes == ((2.25, 1.5, 3.5, 2.0),)
    _write(tmp_path / "images", "b.jpg", (10, 20))
    with pytest.raises(InputError, match="b"):
        pair_coco(tmp_path / "images", coco)
    (tmp_path / "images" / "b.jpg").unlink()
    _write(tmp_path / "images", "a.jpg", (11, 20))
    with pytest.raises(InputError, match="20x10"):
        pair_coco(tmp_path / "images", coco)
