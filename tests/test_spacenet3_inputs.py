"""SpaceNet-3 style inputs (issue 14): GEODEFECT_SHARED, missing-dataset message, pan/mul catalog
entries, zero-byte GeoJSON = negatives, validation by whole source rasters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geodefect.catalog import get_dataset, resolve_road_inputs, root_placeholders
from geodefect.cli.main import cli
from geodefect.errors import InputFileNotFoundError
from geodefect.testing.tiny import make_tiny_scene, write_tiny_geotiff

FAST = ["--size-px", "64", "--stride-px", "64", "-q"]


def test_shared_placeholder_follows_geodefect_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODEFECT_SHARED", str(tmp_path))
    assert root_placeholders()["shared"] == str(tmp_path)
    assert get_dataset("spacenet3_paris").root == tmp_path / "spacenet3_samples" / "AOI_3_Paris_Roads_Sample"
    monkeypatch.delenv("GEODEFECT_SHARED")
    assert root_placeholders()["shared"].endswith("shared/data")


def test_missing_dataset_names_the_path_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODEFECT_SHARED", str(tmp_path / "nowhere"))
    with pytest.raises(InputFileNotFoundError) as err:
        resolve_road_inputs(get_dataset("spacenet3_vegas"))
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "spacenet3_samples" / "AOI_2_Vegas_Roads_Sample") in msg
    assert "set GEODEFECT_SHARED" in msg and "\n" not in msg


def _fake_spacenet3(tmp_path, ids=("img1", "img2")):
    """PAN/MUL/geojson layout of spacenet3_shanghai; img2's GeoJSON is zero bytes (water)."""
    from shapely.geometry import LineString

    from geodefect.testing.tiny import TINY_ORIGIN, write_lines

    root = tmp_path / "spacenet3_samples" / "AOI_4_Shanghai_Roads_Sample"
    for sub in ("PAN", "MUL", "geojson"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(ids):
        origin = (TINY_ORIGIN[0] + 100 * i, TINY_ORIGIN[1])
        write_tiny_geotiff(root / "PAN" / f"PAN_AOI_4_Shanghai_{name}.tif",
                           rng.integers(300, 1500, (1, 128, 128)).astype(np.uint16), pixel_size_m=0.5, origin=origin)
        write_tiny_geotiff(root / "MUL" / f"MUL_AOI_4_Shanghai_{name}.tif",
                           rng.integers(300, 1500, (8, 32, 32)).astype(np.uint16), pixel_size_m=2.0, origin=origin)
        gj = root / "geojson" / f"spacenetroads_AOI_4_Shanghai_{name}.geojson"
        if i == 0:
            x0, y0 = origin
            write_lines(gj, [LineString([(x0, y0 - 20), (x0 + 64, y0 - 20)])])
        else:
            gj.write_bytes(b"")
    return root


def test_pan_mul_entry_pan_sharpens_and_a_zero_byte_geojson_gives_negatives(tmp_path, monkeypatch):
    _fake_spacenet3(tmp_path)
    monkeypatch.setenv("GEODEFECT_SHARED", str(tmp_path))
    inputs = resolve_road_inputs(get_dataset("spacenet3_shanghai"))
    assert inputs.pan_sharpen == {"mul_bands": [5, 3, 2]}
    assert all(str(img).startswith("/vsimem/") and img.suffix == ".vrt" for img, _ in inputs.sources)
    out = tmp_path / "chips"
    res = CliRunner().invoke(cli, ["chip", "--dataset", "spacenet3_shanghai", *FAST, "--keep-empty", "0",
                                   "--val-sources", "img1", "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "meta.json").read_text())
    water = [s for s in meta["sources"] if "img2" in s["image"]][0]
    assert water["no_roads"] and water["n_chips"] == 4  # every chip kept although keep_empty = 0
    for path in (out / "labels").glob("PAN_AOI_4_Shanghai_img2_*.tif"):
        with rasterio.open(path) as ds:
            assert not ds.read().any()
    assert meta["split"]["method"] == "sources" and meta["pan_sharpen"] == {"mul_bands": [5, 3, 2]}


def test_val_sources_puts_whole_rasters_on_the_val_side(tmp_path):
    a = make_tiny_scene(tmp_path / "a", height_px=128, width_px=128, road_rows=(40,), road_cols=(70,))
    make_tiny_scene(tmp_path / "b", height_px=128, width_px=128, road_rows=(40,), road_cols=(70,), seed=1)
    (tmp_path / "b" / "tiny.tif").rename(tmp_path / "b" / "other.tif")
    out = tmp_path / "chips"
    res = CliRunner().invoke(cli, ["chip", str(a.image), str(tmp_path / "b" / "other.tif"), "--centerlines",
                                   str(a.centerlines), *FAST, "--keep-empty", "1", "--val-sources", "other",
                                   "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    import geopandas as gpd

    index = gpd.read_file(out / "index.gpkg")
    assert set(index[index.source == "other.tif"].split) == {"val"}
    assert set(index[index.source == "tiny.tif"].split) == {"train"}
    bad = CliRunner().invoke(cli, ["chip", str(a.image), "--centerlines", str(a.centerlines), *FAST,
                                   "--val-sources", "nomatch", "-o", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "matches none" in bad.output and not (tmp_path / "bad").exists()
