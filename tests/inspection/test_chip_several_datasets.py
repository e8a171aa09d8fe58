"""`geodefect chip --dataset a,b` for image folders: one chip set, split by image, settings checked."""

from __future__ import annotations

import csv
import json

import pytest

from geodefect.errors import GeodefectError, InputError
from geodefect.testing.rail import make_rail_dataset
from geodefect.workflows.chip import chip


def _catalog(tmp_path, monkeypatch, entries: dict) -> None:
    lines = ["datasets:"]
    for name, fields in entries.items():
        lines.append(f"  {name}:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in fields.items()]
    path = tmp_path / "catalog.yaml"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("GEODEFECT_CATALOG", str(path))


def _rail(tmp_path, name, n, seed, prefix=None):
    d = make_rail_dataset(tmp_path / name, n_images=n, height_px=200, width_px=40, seed=seed)
    if prefix:  # distinct file stems, as two splits of one collection have
        coco = json.loads(d.coco.read_text())
        for img in coco["images"]:
            old = d.images / img["file_name"]
            img["file_name"] = f"{prefix}{img['file_name']}"
            old.rename(d.images / img["file_name"])
        d.coco.write_text(json.dumps(coco))
    return {"task": "rail_segment", "root": str(tmp_path / name), "images": "images/*.png",
            "coco": "boxes_coco.json", "strip_height_px": 100}


def test_two_datasets_make_one_chip_set_split_by_image(tmp_path, monkeypatch):
    _catalog(tmp_path, monkeypatch, {"ra": _rail(tmp_path, "a", 3, 0, "a_"), "rb": _rail(tmp_path, "b", 4, 1, "b_")})
    out = tmp_path / "chips"
    meta = chip(None, out, dataset="ra,rb", overrides={"val_fraction": 0.3})
    with (out / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    sources = {r["source"] for r in rows}
    assert len(sources) == 7 and {s[:2] for s in sources} == {"a_", "b_"}
    assert meta["n_chips"] == 7 * 2 and len(meta["sources"]) == 7 and meta["label"]["source"] == "coco"
    split_of = {}
    for r in rows:
        split_of.setdefault(r["source"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())                 # validation by frame
    assert sum(s == {"val"} for s in split_of.values()) == 2           # round(7 * 0.3)


def test_same_stem_in_two_datasets_is_refused(tmp_path, monkeypatch):
    _catalog(tmp_path, monkeypatch, {"ra": _rail(tmp_path, "a", 2, 0), "rb": _rail(tmp_path, "b", 2, 1)})
    with pytest.raises(InputError, match="more than one folder"):
        chip(None, tmp_path / "chips", dataset="ra,rb")
    assert not (tmp_path / "chips").exists()


def test_datasets_with_other_strip_settings_are_refused(tmp_path, monkeypatch):
    other = {**_rail(tmp_path, "b", 2, 1, "b_"), "strip_height_px": 50}
    _catalog(tmp_path, monkeypatch, {"ra": _rail(tmp_path, "a", 2, 0, "a_"), "rb": other})
    with pytest.raises(InputError, match="strip_height_px"):
        chip(None, tmp_path / "chips", dataset="ra,rb")
    with pytest.raises(GeodefectError, match="ONE image folder"):
        chip(None, tmp_path / "chips", dataset="ra,rb", coco=tmp_path / "a" / "boxes_coco.json")
    assert not (tmp_path / "chips").exists()
