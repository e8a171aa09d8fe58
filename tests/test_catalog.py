"""data_catalog.yaml lookups: unknown names, the generated demo scene, SpaceNet pairing."""

from __future__ import annotations

import pytest

from geodefect.catalog import (
    available_datasets,
    get_dataset,
    resolve_inspection_pairs,
    resolve_road_inputs,
)
from geodefect.errors import InputError, InputFileNotFoundError


def test_catalog_has_the_promised_entries():
    names = available_datasets()
    assert {"demo", "spacenet_paris", "spacenet_vegas_sample", "crackforest"} <= set(names)
    assert get_dataset("spacenet_paris").task == "roads"
    assert get_dataset("crackforest").task == "crack_segment"


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(InputError, match="unknown dataset 'paris2'.*demo.*spacenet_paris"):
        get_dataset("paris2")


def test_missing_data_root_names_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODEFECT_DATA", str(tmp_path))
    entry = get_dataset("spacenet_paris")
    assert entry.root == tmp_path / "spacenet"
    with pytest.raises(InputFileNotFoundError, match="AOI_3_Paris/PS-RGB"):
        resolve_road_inputs(entry)


def test_spacenet_pairs_images_with_their_geojson(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODEFECT_DATA", str(tmp_path))
    root = tmp_path / "spacenet" / "AOI_3_Paris"
    (root / "PS-RGB").mkdir(parents=True)
    (root / "geojson_roads").mkdir()
    for n in (12, 7):
        (root / "PS-RGB" / f"SN3_roads_train_AOI_3_Paris_PS-RGB_img{n}.tif").write_bytes(b"")
        (root / "geojson_roads" / f"SN3_roads_train_AOI_3_Paris_geojson_roads_img{n}.geojson").write_text("{}")
    inputs = resolve_road_inputs(get_dataset("spacenet_paris"))
    assert [(i.name.split("_")[-1], c.name.split("_")[-1]) for i, c in inputs.sources] == [
        ("img12.tif", "img12.geojson"), ("img7.tif", "img7.geojson")]
    assert inputs.bands == [1, 2, 3]


def test_demo_scene_generated_once(tmp_path, monkeypatch):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "datasets:\n  demo:\n    task: roads\n    generator: demo_scene\n    root: '{cache}/demo'\n"
        "    size_px: 256\n    seed: 1\n"
    )
    monkeypatch.setenv("GEODEFECT_CATALOG", str(catalog))
    monkeypatch.setenv("GEODEFECT_CACHE", str(tmp_path / "cache"))
    inputs = resolve_road_inputs(get_dataset("demo"))
    (image, lines), = inputs.sources
    assert image.is_file() and lines.is_file() and inputs.aoi.is_file()
    mtime = image.stat().st_mtime_ns
    again = resolve_road_inputs(get_dataset("demo"))
    assert again.sources[0][0] == image and image.stat().st_mtime_ns == mtime


def test_road_dataset_required(shared_data):
    with pytest.raises(InputError, match="without road centerlines"):
        resolve_road_inputs(get_dataset("crackforest"))
    pairs = resolve_inspection_pairs(get_dataset("crackforest"))
    assert len(pairs) > 100 and all(m.is_file() for _, m in pairs[:5])


def test_vegas_sample_resolves(shared_data):
    inputs = resolve_road_inputs(get_dataset("spacenet_vegas_sample"))
    (image, lines), = inputs.sources
    assert image.name == "RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    assert lines.name == "AOI_2_Vegas_img0_roads.geojson"
