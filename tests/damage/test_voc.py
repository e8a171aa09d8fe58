"""The Pascal VOC reader: every field read back exactly; bad inputs fail naming the file."""

from __future__ import annotations

import pytest

from geodefect.errors import InputError, InputFileNotFoundError
from geodefect.io.voc import (
    RDD_CLASSES,
    VocObject,
    box_to_pixel_slices,
    find_image,
    read_voc,
    write_voc,
)

XML = """<annotation>
  <folder>images</folder>
  <filename>Norway_000001.jpg</filename>
  <size><width>3650</width><height>2044</height><depth>3</depth></size>
  <object>
    <name>D00</name><pose>Unspecified</pose><truncated>1</truncated><difficult>0</difficult>
    <bndbox><xmin>1042.7</xmin><ymin>1210.03</ymin><xmax>1300</xmax><ymax>2043.5</ymax></bndbox>
  </object>
  <object>
    <name>D40</name><difficult>1</difficult>
    <bndbox><xmin>5</xmin><ymin>6</ymin><xmax>70</xmax><ymax>80</ymax></bndbox>
  </object>
  <object>
    <name>Repair</name>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>
  </object>
</annotation>
"""


def _write(tmp_path, text, name="a.xml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_field_read_exactly(tmp_path):
    ann = read_voc(_write(tmp_path, XML), classes=RDD_CLASSES)
    assert ann.filename == "Norway_000001.jpg"
    assert (ann.width_px, ann.height_px, ann.depth) == (3650, 2044, 3)
    assert ann.n_ignored == 1  # Repair
    a, b = ann.objects
    assert (a.name, a.xmin, a.ymin, a.xmax, a.ymax) == ("D00", 1042.7, 1210.03, 1300.0, 2043.5)
    assert (a.truncated, a.difficult) == (True, False)
    assert (b.name, b.xmin, b.ymin, b.xmax, b.ymax, b.difficult, b.truncated) == ("D40", 5, 6, 70, 80, True, False)
    assert b.area_px2 == 65 * 74


def test_all_classes_kept_without_a_class_list(tmp_path):
    ann = read_voc(_write(tmp_path, XML))
    assert [o.name for o in ann.objects] == ["D00", "D40", "Repair"]


def test_write_read_round_trip(tmp_path):
    objs = [VocObject("D10", 1.5, 2.25, 30, 40.75, difficult=True), VocObject("D20", 3, 4, 5, 6, truncated=True)]
    write_voc(tmp_path / "r.xml", filename="r.jpg", size=(100, 50, 3), objects=objs)
    ann = read_voc(tmp_path / "r.xml")
    assert ann.objects == tuple(objs)
    assert (ann.width_px, ann.height_px, ann.filename) == (100, 50, "r.jpg")


def test_missing_size_and_no_objects(tmp_path):
    ann = read_voc(_write(tmp_path, "<annotation><filename>x.jpg</filename></annotation>"))
    assert ann.width_px is None and ann.height_px is None
    assert ann.objects == () and ann.is_negative


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("<object><name>D00</name></object>", "no <bndbox>"),
        ("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>", "no <name>"),
        ("<object><name>D00</name><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>", "<xmin> 'a'"),
        ("<object><name>D00</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox></object>", "<ymax> None"),
        ("<object><name>D00</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>", "empty box"),
        ("<object><name>D99</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>", "unknown class 'D99'"),
    ],
)
def test_malformed_objects_name_the_file(tmp_path, body, match):
    p = _write(tmp_path, f"<annotation>{body}</annotation>", "bad_file.xml")
    with pytest.raises(InputError, match=match) as info:
        read_voc(p, classes=RDD_CLASSES)
    assert "bad_file.xml" in str(info.value)


def test_not_xml_and_wrong_root_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="not valid XML"):
        read_voc(_write(tmp_path, "<annotation>", "broken.xml"))
    with pytest.raises(InputError, match="root <coco>"):
        read_voc(_write(tmp_path, "<coco/>", "coco.xml"))
    with pytest.raises(InputFileNotFoundError, match="nope.xml"):
        read_voc(tmp_path / "nope.xml")


def test_find_image(tmp_path):
    (tmp_path / "images").mkdir()
    ann = read_voc(_write(tmp_path, XML, "Norway_000001.xml"))
    with pytest.raises(InputFileNotFoundError, match="Norway_000001.xml"):
        find_image(ann, tmp_path / "images")
    (tmp_path / "images" / "Norway_000001.jpg").write_bytes(b"")
    assert find_image(ann, tmp_path / "images").name == "Norway_000001.jpg"


def test_box_to_pixel_slices_is_one_based_inclusive_and_clipped():
    rows, cols = box_to_pixel_slices(VocObject("D00", 1, 1, 10, 5), width_px=100, height_px=100)
    assert (rows, cols) == (slice(0, 5), slice(0, 10))
    rows, cols = box_to_pixel_slices(VocObject("D00", 90.4, 95.6, 120, 130), width_px=100, height_px=100)
    assert (rows, cols) == (slice(95, 100), slice(89, 100))
