"""Damage datasets: RDD layout (crop rules), generic DOMAIN/CLASS layout, errors naming domains/files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from geodefect.datasets.damage import (
    BACKGROUND,
    CropDataset,
    channel_stats,
    class_names,
    crop_resize,
    detect_layout,
    load_crops,
    scan_domains,
)
from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.io.voc import VocObject, read_voc, write_voc
from geodefect.testing.damage import make_damage_dataset


@pytest.fixture(scope="module")
def rdd(tmp_path_factory):
    return make_damage_dataset(tmp_path_factory.mktemp("rdd"), countries=("A", "B"), n_images=6, size_px=160)


def test_rdd_layout_crops_follow_the_rules(rdd):
    assert detect_layout(rdd) == "rdd"
    domains = scan_domains(rdd)
    assert list(domains) == ["A", "B"]
    xml_boxes = 0
    for name, samples in domains.items():
        for xml in sorted((rdd / name / "train" / "annotations" / "xmls").glob("*.xml")):
            ann = read_voc(xml, classes=["D00", "D10", "D20", "D40"])
            xml_boxes += sum(o.area_px2 >= 400 for o in ann.objects)
        for s in samples:
            x0, y0, x1, y1 = s.box
            assert (x1 - x0) * (y1 - y0) >= 400
            assert s.label in ("D00", "D10", "D20", "D40")
    assert sum(len(s) for s in domains.values()) == xml_boxes
    crops = load_crops(domains, classes=class_names(domains))
    assert crops.images.shape[1:] == (3, 64, 64) and crops.images.dtype == np.uint8
    assert set(crops.domains.tolist()) == {0, 1}


def test_small_boxes_dropped_exactly_at_400(tmp_path):
    d = tmp_path / "X" / "train"
    (d / "images").mkdir(parents=True)
    (d / "annotations" / "xmls").mkdir(parents=True)
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(d / "images" / "i.jpg")
    objs = [VocObject("D00", 1, 1, 21, 21), VocObject("D10", 1, 1, 20.9, 21)]  # 400 kept, 398 dropped
    write_voc(d / "annotations" / "xmls" / "i.xml", filename="i.jpg", size=(50, 50, 3), objects=objs)
    samples = scan_domains(tmp_path)["X"]
    assert [s.label for s in samples] == ["D00"]


def test_background_crops_do_not_overlap_damage(rdd):
    domains = scan_domains(rdd, background_per_image=2)
    for samples in domains.values():
        damage = {}
        for s in samples:
            if s.label != BACKGROUND:
                damage.setdefault(s.image, []).append(s.box)
        for s in samples:
            if s.label == BACKGROUND:
                for b in damage[s.image]:
                    assert not (s.box[0] < b[2] and b[0] < s.box[2] and s.box[1] < b[3] and b[1] < s.box[3])
    assert class_names(domains)[-1] == BACKGROUND


def test_crop_resize_takes_the_box():
    pixels = np.zeros((100, 100, 3), np.uint8)
    pixels[10:30, 40:60] = 255  # rows 11..30, cols 41..60 in VOC 1-based terms
    out = crop_resize(pixels, (41, 11, 60, 30), size_px=64)
    assert out.shape == (3, 64, 64) and out.min() == 255


def test_generic_folder_layout(tmp_path):
    for dom, n in (("site1", 2), ("site2", 3)):
        for cls in ("crack", "no_crack"):
            (tmp_path / dom / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((40, 30, 3), 10 * i, np.uint8)).save(tmp_path / dom / cls / f"{i}.png")
    assert detect_layout(tmp_path) == "folders"
    domains = scan_domains(tmp_path)
    assert {k: len(v) for k, v in domains.items()} == {"site1": 4, "site2": 6}
    classes = class_names(domains)
    assert classes == ["crack", "no_crack"]
    crops = load_crops(domains, classes=classes, size_px=32)
    assert crops.images.shape == (10, 3, 32, 32)
    mean, std = channel_stats(crops)
    item = CropDataset(crops, mean=mean, std=std, augment=True)[3]
    assert item["image"].shape == (3, 32, 32) and int(item["domain"]) == 0


def test_domain_without_samples_is_named(tmp_path):
    (tmp_path / "full" / "crack").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "full" / "crack" / "a.png")
    (tmp_path / "empty" / "crack").mkdir(parents=True)
    with pytest.raises(InputError, match="domain 'empty'"):
        scan_domains(tmp_path)
    with pytest.raises(InputError, match="domain 'missing'"):
        scan_domains(tmp_path, domains=["full", "missing"])


def test_missing_image_for_annotation_is_named(tmp_path):
    d = tmp_path / "C" / "train"
    (d / "images").mkdir(parents=True)
    (d / "annotations" / "xmls").mkdir(parents=True)
    write_voc(d / "annotations" / "xmls" / "gone.xml", filename="gone.jpg", size=None, objects=[VocObject("D00", 1, 1, 30, 30)])
    with pytest.raises(InputFileNotFoundError, match="gone.xml"):
        scan_domains(tmp_path)


def test_unknown_class_in_rdd_is_named(tmp_path):
    d = tmp_path / "C" / "train"
    (d / "images").mkdir(parents=True)
    (d / "annotations" / "xmls").mkdir(parents=True)
    write_voc(d / "annotations" / "xmls" / "odd.xml", filename="odd.jpg", size=None, objects=[VocObject("Z9", 1, 1, 30, 30)])
    with pytest.raises(InputError, match="odd.xml.*'Z9'"):
        scan_domains(tmp_path)


def test_detect_task_without_meta_json(rdd, tmp_path):
    from geodefect.tasks import TASKS
    from geodefect.testing.damage import make_panoramas

    def detect_task(d):
        found = [name for name, task in TASKS.items() if task.owns_data(d)]
        return found[0] if found else None

    assert detect_task(rdd) == "damage_classify"
    assert detect_task(make_panoramas(tmp_path / "p", n_images=2, height_px=64, width_px=128).root) == "panorama_stack"
    (tmp_path / "gen" / "dom" / "cls").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "gen" / "dom" / "cls" / "a.png")
    assert detect_task(tmp_path / "gen") == "damage_classify"
    (tmp_path / "chips").mkdir()
    (tmp_path / "chips" / "meta.json").write_text("{}")
    assert detect_task(tmp_path / "chips") is None  # chip folders dispatch on their meta.json
