"""Road chip export (geodefect.chips via the road chip workflow) on tiny hand-made scenes."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from geodefect.chips import export as chips
from geodefect.chips.geo import chip as _geo_chip
from geodefect.errors import ConfigError, InputError
from geodefect.testing.tiny import make_tiny_scene, write_tiny_geotiff


def chip(*args, **kwargs):  # the road task names its chips
    return _geo_chip(*args, task="roads", **kwargs)


SMALL = {"size_px": 64, "stride_px": 48, "keep_empty": 1.0}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_tiny_scene(tmp_path_factory.mktemp("scene"))


def _run(scene, out, **overrides):
    opts = {**SMALL, **overrides}
    aoi = opts.pop("aoi", None)
    return chip([scene.image], out, centerlines=scene.centerlines, aoi=aoi, overrides=opts)


def _index(out):
    return gpd.read_file(out / "index.gpkg", layer="chips")


def test_chips_match_source_windows(scene, tmp_path):
    out = tmp_path / "chips"
    summary = _run(scene, out, val_fraction=0.0)  # no split drops: chips cover the raster
    idx = _index(out)
    assert summary.n_chips == len(idx) > 0
    with rasterio.open(scene.image) as src:
        src_arr, src_t = src.read(), src.transform
        for row in idx.itertuples():
            with rasterio.open(out / row.image) as c:
                win = from_bounds(*c.bounds, transform=src_t).round_offsets().round_lengths()
                assert c.crs == src.crs
                assert c.transform.almost_equals(window_transform(win, src_t), precision=1e-9)
                r0, c0 = int(win.row_off), int(win.col_off)
                np.testing.assert_array_equal(c.read(), src_arr[:, r0:r0 + c.height, c0:c0 + c.width])
                assert box(*c.bounds).equals_exact(row.geometry, 1e-6)
            for sub in ("label", "orientation"):
                with rasterio.open(out / getattr(row, sub)) as lab:
                    assert lab.transform == c.transform and lab.count == 1 and lab.dtypes[0] == "uint8"
                    # the road mask is stored 1 bit per pixel and reads back as uint8 0/1
                    assert (lab.tags(1, "IMAGE_STRUCTURE").get("NBITS") == "1") == (sub == "label")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is True and meta["task"] == "roads"
    assert meta["n_chips"] == len(idx) and meta["bands"] == [1, 2, 3]
    assert meta["pixel_size_m"] == pytest.approx(0.5)
    assert meta["orientation"]["n_classes"] == 19
    assert len(meta["mean"]) == len(meta["std"]) == 3
    # mean/std of the exported chips, recomputed from the files (every 4th row and column)
    stack = np.concatenate([rasterio.open(out / p).read()[:, ::4, ::4].reshape(3, -1) for p in idx.image], axis=1)
    np.testing.assert_allclose(meta["mean"], stack.mean(axis=1), atol=1e-3)
    np.testing.assert_allclose(meta["std"], stack.std(axis=1), atol=1e-3)
    full = np.concatenate([rasterio.open(out / p).read().reshape(3, -1) for p in idx.image], axis=1)
    # ... and close to the statistics of every pixel (a 1/16 sample of a few chips: within 1 grey level)
    np.testing.assert_allclose(meta["mean"], full.mean(axis=1), atol=1.0)
    np.testing.assert_allclose(meta["std"], full.std(axis=1), atol=1.0)
    # road length: one 130 m horizontal and one 100 m vertical line
    assert meta["road_km"] == pytest.approx(0.23, rel=0.01)


def _mosaic(out, sub, shape, transform):
    mosaic = np.zeros(shape, np.uint8)
    for path in sorted((out / sub).glob("*.tif")):
        with rasterio.open(path) as c:
            win = from_bounds(*c.bounds, transform=transform).round_offsets().round_lengths()
            r0, c0 = int(win.row_off), int(win.col_off)
            mosaic[r0:r0 + c.height, c0:c0 + c.width] = c.read(1)
    return mosaic


def test_masks_and_orientation_line_up(scene, tmp_path):
    out = tmp_path / "chips"
    # 2.1 m, not 2.0: pixel centres then never sit exactly on the buffer's edge (metres are
    # ground metres, which differ from UTM grid metres by the scale factor, ~0.9996 here)
    _run(scene, out, buffer_m=2.1, val_fraction=0.0)
    shape = (200, 260)
    mask = _mosaic(out, "labels", shape, scene.transform)
    orient = _mosaic(out, "orientation", shape, scene.transform)
    rows, cols = np.mgrid[0:200, 0:260]
    # pixel centres within 2.1 m (= 4.2 px at 0.5 m) of row 60.5 or column 150.5
    expected = (np.abs(rows + 0.5 - 60.5) <= 4.2) | (np.abs(cols + 0.5 - 150.5) <= 4.2)
    agree = (mask == expected).mean()
    assert agree > 0.998, agree
    # orientation: west->east line = bin 1, north->south line = 270 deg = bin 14 (20 deg bins)
    assert (orient[60, :130] == 1).all()
    assert (orient[110:, 150] == 14).all()
    assert set(np.unique(orient)) <= {0, 1, 14}
    assert (orient[0:40, 0:120] == 0).all()


def test_gaussian_label_width(scene, tmp_path):
    out = tmp_path / "chips"
    _run(scene, out, label="gaussian", sigma_px=5.0, threshold=0.76, val_fraction=0.0)
    mask = _mosaic(out, "labels", (200, 260), scene.transform)
    half = 5.0 * np.sqrt(-2 * np.log(0.76))  # 3.7 px
    col = mask[:, 20]
    rows = np.nonzero(col)[0]
    assert rows.min() == int(np.ceil(60.5 - half - 0.5)) and rows.max() == int(np.floor(60.5 + half - 0.5))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["label"] == {"mode": "gaussian", "sigma_px": 5.0, "threshold": 0.76}


def test_split_never_straddles(scene, tmp_path):
    out = tmp_path / "chips"
    summary = _run(scene, out, split_block_px=96, val_fraction=0.3, seed=3)
    idx = _index(out)
    train, val = idx[idx.split == "train"], idx[idx.split == "val"]
    assert len(train) and len(val), (len(train), len(val))
    overlap = shapely.area(shapely.intersection(
        np.asarray(train.geometry.values)[:, None], np.asarray(val.geometry.values)[None, :]
    ))
    assert overlap.max() == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["split"]["n_val"] == len(val) == summary.n_val
    assert meta["split"]["n_dropped_overlap"] > 0


def test_assign_splits_drops_overlapping_train():
    from geodefect.windows import iter_windows

    windows = list(iter_windows(200, 200, size_px=40, stride_px=30))
    splits, blocks = chips.assign_splits(windows, block_px=60, val_blocks={(1, 1)})
    for s, b in zip(splits, blocks, strict=True):
        assert (s == "val") == (b == (1, 1))
    val = [chips._pixel_box(w) for w, s in zip(windows, splits, strict=True) if s == "val"]
    for w, s in zip(windows, splits, strict=True):
        if s == "train":
            assert all(chips._pixel_box(w).intersection(v).area == 0 for v in val)
    assert chips.choose_val_blocks([(0, 0)], val_fraction=0.5, seed=0) == set()
    keys = [(0, i, j) for i in range(3) for j in range(3)]
    assert len(chips.choose_val_blocks(keys, val_fraction=0.2, seed=0)) == 2
    assert chips.choose_val_blocks(keys, val_fraction=0.2, seed=0) == chips.choose_val_blocks(keys, val_fraction=0.2, seed=0)


def test_resume_after_interruption(scene, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    _run(scene, ref)
    out = tmp_path / "chips"
    calls = {"n": 0}
    original = chips.ChipExporter.export_window

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(chips.ChipExporter, "export_window", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(scene, out)
    monkeypatch.setattr(chips.ChipExporter, "export_window", original)
    assert not (out / "meta.json").exists() and not (out / "index.gpkg").exists()
    (out / "images" / ".tmp-stale-x.tif").write_bytes(b"half")
    done = sorted(p.name for p in (out / "images").glob("[!.]*.tif"))
    assert 0 < len(done) <= 5
    mtimes = {n: (out / "images" / n).stat().st_mtime_ns for n in done}
    summary = _run(scene, out, workers=1)  # another worker count is not another setting
    assert summary.n_resumed == len(done)
    assert {n: (out / "images" / n).stat().st_mtime_ns for n in done} == mtimes
    assert not list((out / "images").glob(".tmp-*"))
    a, b = json.loads((ref / "meta.json").read_text()), json.loads((out / "meta.json").read_text())
    for key in ("n_chips", "mean", "std", "split", "road_km"):
        assert a[key] == b[key], key
    assert sorted(_index(ref).chip_id) == sorted(_index(out).chip_id)
    again = _run(scene, out)
    assert again.already_complete and again.n_chips == a["n_chips"]


def test_keep_empty_fraction(tmp_path):
    s = make_tiny_scene(tmp_path / "s", height_px=300, width_px=300, road_rows=(20,), road_cols=())
    n_all = _run(s, tmp_path / "all", keep_empty=1.0).n_chips
    roads = _index(_run(s, tmp_path / "none", keep_empty=0.0).out_dir)
    assert (roads.road_frac > 0).all() and len(roads) < n_all
    half1 = _index(_run(s, tmp_path / "h1", keep_empty=0.5, seed=1).out_dir)
    half2 = _index(_run(s, tmp_path / "h2", keep_empty=0.5, seed=1).out_dir)
    assert list(half1.chip_id) == list(half2.chip_id)
    n_empty = (half1.road_frac == 0).sum()
    assert 0 < n_empty < n_all - len(roads)


def test_max_nodata(tmp_path):
    s = make_tiny_scene(tmp_path / "s", height_px=128, width_px=192, road_rows=(100,), road_cols=())
    with rasterio.open(s.image) as src:
        arr = src.read()
    arr[:, :, :96] = 0  # left half nodata
    write_tiny_geotiff(s.image, arr, nodata=0)
    out = tmp_path / "chips"
    summary = _run(s, out, size_px=64, stride_px=64, max_nodata=0.25)
    idx = _index(out)
    # 2x3 windows: column 0 all nodata, column 64 half nodata (> 0.25): 4 dropped
    assert summary.n_dropped["nodata"] == 4 and len(idx) == 2
    assert (idx.geometry.bounds.minx >= s.transform.c + 96 * 0.5 - 1e-6).all()
    everything = _run(s, tmp_path / "all", size_px=64, stride_px=64, max_nodata=1.0)
    assert everything.n_chips == 6
    # no road labels where the image has no data (the road at row 100 crosses the nodata half)
    mask = _mosaic(tmp_path / "all", "labels", (128, 192), s.transform)
    assert not mask[:, :96].any() and mask[100, 96:].all()


def test_aoi_filters_windows(scene, tmp_path):
    t = scene.transform
    aoi_poly = box(*(t @ (0, 60)), *(t @ (50, 0)))  # top-left 50x60 px
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[aoi_poly], crs="EPSG:32631").to_crs("EPSG:4326").to_file(aoi)
    out = tmp_path / "chips"
    _run(scene, out, aoi=aoi)
    idx = _index(out)
    assert len(idx) and all(g.intersects(aoi_poly) for g in idx.geometry)
    assert len(idx) < _run(scene, tmp_path / "all").n_chips


def test_cell_size_resampling(scene, tmp_path):
    from rasterio.transform import from_origin

    out = tmp_path / "chips"
    _run(scene, out, cell_size_m=1.0, size_px=32, stride_px=32, val_fraction=0.0)
    idx = _index(out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["pixel_size_m"] == pytest.approx(1.0) and meta["cell_size_m"] == 1.0
    target = from_origin(scene.transform.c, scene.transform.f, 1.0, 1.0)  # 100 x 130 px at 1 m
    assert len(idx) == 4 * 5  # axis_offsets(100, 32, 32) x axis_offsets(130, 32, 32)
    for row in idx.itertuples():
        with rasterio.open(out / row.image) as c:
            assert c.shape == (32, 32)
            assert c.transform.a == pytest.approx(1.0) and c.transform.e == pytest.approx(-1.0)
            col, r = ~target @ (c.transform.c, c.transform.f)
            assert abs(col - round(col)) < 1e-6 and abs(r - round(r)) < 1e-6  # on the 1 m grid
    mask = _mosaic(out, "labels", (100, 130), target)
    rows, cols = np.mgrid[0:100, 0:130]
    # the lines sit at y of source row 60.5 (target 30.25) and x of source col 150.5 (75.25)
    expected = (np.abs(rows + 0.5 - 30.25) <= 2) | (np.abs(cols + 0.5 - 75.25) <= 2)
    assert (mask == expected).mean() > 0.995
    img = _mosaic(out, "images", (100, 130), target)  # band 1
    assert img[expected].mean() + 50 < img[~expected].mean()


def test_16bit_stretch(tmp_path):
    s = make_tiny_scene(tmp_path / "s", dtype="uint16")
    out = tmp_path / "chips"
    _run(s, out)
    idx = _index(out)
    with rasterio.open(out / idx.image[0]) as c, rasterio.open(out / idx.label[0]) as lab:
        img, m = c.read(), lab.read(1).astype(bool)
    assert img.dtype == np.uint8 and img.max() > 200
    assert img[:, m].mean() + 60 < img[:, ~m].mean()


def test_bands_subset(scene, tmp_path):
    out = tmp_path / "chips"
    _run(scene, out, bands="3,1")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["bands"] == [3, 1] and len(meta["mean"]) == 2
    with rasterio.open(next((out / "images").glob("*.tif"))) as c:
        assert c.count == 2


def test_window_transform_helper_agrees():
    from affine import Affine

    t = Affine(0.5, 0, 100, 0, -0.5, 200)
    assert window_transform(Window(4, 6, 10, 10), t) == Affine(0.5, 0, 102, 0, -0.5, 197)


def test_several_rasters_share_one_folder(tmp_path):
    a = make_tiny_scene(tmp_path / "a", seed=1)
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    # a second tile east of the first, same CRS, the same centerline file
    with rasterio.open(a.image) as src:
        arr = src.read()
    write_tiny_geotiff(b_dir / "tiny.tif", arr, origin=(448_130.0, 5_412_000.0))
    out = tmp_path / "chips"
    summary = chip([a.image, b_dir / "tiny.tif"], out, centerlines=a.centerlines,
                   overrides={**SMALL, "val_fraction": 0.5, "split_block_px": 96})
    idx = _index(out)
    assert summary.n_chips == len(idx)
    assert idx.chip_id.str.startswith("000_tiny_").any() and idx.chip_id.str.startswith("001_tiny_").any()
    assert set(idx.split) == {"train", "val"}
    meta = json.loads((out / "meta.json").read_text())
    assert [s["n_chips"] for s in meta["sources"]] == [
        (idx.chip_id.str.startswith(p)).sum() for p in ("000_", "001_")]
    # the second tile's chips lie east of the first tile
    second = idx[idx.chip_id.str.startswith("001_")]
    assert (second.geometry.bounds.minx >= 448_130.0 - 1e-6).all()


def test_synthetic_scene_labels_on_carriageway(tmp_path):
    """On the realistic synthetic scene, 4 m road masks lie on the generator's carriageway."""
    from geodefect.testing.scenes import make_road_scene

    s = make_road_scene(tmp_path / "scene", size_px=256, seed=0)
    out = tmp_path / "chips"
    chip([s.image], out, centerlines=s.centerlines, aoi=s.aoi,
         overrides={"size_px": 128, "stride_px": 96, "keep_empty": 1.0, "val_fraction": 0.0})
    with rasterio.open(s.road_mask) as src:
        truth, t = src.read(1).astype(bool), src.transform
    mask = _mosaic(out, "labels", truth.shape, t).astype(bool)
    assert mask.sum() > 500
    assert (mask & truth).sum() / mask.sum() > 0.9  # label pixels sit on the road surface


def test_val_blocks_drawn_among_blocks_with_roads(tmp_path):
    s = make_tiny_scene(tmp_path / "s", height_px=400, width_px=400, road_rows=(10,), road_cols=())
    out = tmp_path / "chips"
    summary = _run(s, out, size_px=64, stride_px=64, keep_empty=0.0)
    idx = _index(out)
    assert summary.n_val > 0 and (idx[idx.split == "val"].road_frac > 0).all()
    keys = [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]
    for seed in range(5):
        assert chips.choose_val_blocks(keys, val_fraction=0.25, seed=seed, road_blocks={(0, 1, 1)}) == {(0, 1, 1)}


def test_width_field_sets_per_road_buffer(tmp_path):
    s = make_tiny_scene(tmp_path / "s")
    lines = gpd.read_file(s.centerlines)
    lines["width_m"] = [5.2, None]  # horizontal road 5.2 m wide; vertical: missing -> buffer_m
    path = tmp_path / "wide.geojson"
    lines.to_file(path)
    out = tmp_path / "chips"
    chip([s.image], out, centerlines=path,
         overrides={**SMALL, "val_fraction": 0.0, "width_field": "width_m", "buffer_m": 1.1})
    mask = _mosaic(out, "labels", (200, 260), s.transform)
    # horizontal: 2.6 m = 5.2 px either side of row 60.5
    col = np.nonzero(mask[:, 20])[0]
    assert (col.min(), col.max()) == (55, 65)
    row = np.nonzero(mask[150, :])[0]  # vertical road: 1.1 m = 2.2 px either side of col 150.5
    assert (row.min(), row.max()) == (148, 152)
    assert json.loads((out / "meta.json").read_text())["label"]["width_field"] == "width_m"
    with pytest.raises(InputError, match="`width_field` 'lanes'.*attributes: id, width_m"):
        chip([s.image], tmp_path / "o2", centerlines=path, overrides={**SMALL, "width_field": "lanes"})
    assert not (tmp_path / "o2").exists()


def test_width_unit_turns_a_lane_count_into_metres(tmp_path):
    s = make_tiny_scene(tmp_path / "s")
    lines = gpd.read_file(s.centerlines)
    lines["lane_number"] = ["2", "0"]  # SpaceNet stores lane counts as strings; 0 -> buffer_m
    path = tmp_path / "lanes.geojson"
    lines.to_file(path)
    out = tmp_path / "chips"
    chip([s.image], out, centerlines=path, overrides={
        **SMALL, "val_fraction": 0.0, "width_field": "lane_number", "width_unit_m": 2.6, "buffer_m": 1.1})
    mask = _mosaic(out, "labels", (200, 260), s.transform)
    col = np.nonzero(mask[:, 20])[0]  # 2 lanes x 2.6 m = 5.2 m wide: 2.6 m = 5.2 px either side of row 60.5
    assert (col.min(), col.max()) == (55, 65)
    row = np.nonzero(mask[150, :])[0]
    assert (row.min(), row.max()) == (148, 152)
    assert json.loads((out / "meta.json").read_text())["label"]["width_unit_m"] == 2.6
    with pytest.raises(ConfigError, match="`width_unit_m` must be > 0"):
        chip([s.image], tmp_path / "o2", centerlines=path, overrides={**SMALL, "width_unit_m": 0})
    assert not (tmp_path / "o2").exists()


def test_row_runs_cut_grid_rows_into_short_overlapping_runs():
    from geodefect.windows import iter_windows

    wins = list(iter_windows(300, 1000, size_px=128, stride_px=96))
    tasks = [chips.ChipTask(w, f"c{i}", "train", i) for i, w in enumerate(wins) if i % 7 != 3]  # some dropped
    runs = chips.row_runs(tasks, max_windows=4)
    assert [t for run in runs for t in run] == tasks  # every task once, order kept
    for run in runs:
        assert 1 <= len(run) <= 4
        assert len({(t.window.row_off, t.window.height) for t in run}) == 1
        for a, b in zip(run[:-1], run[1:], strict=True):
            assert a.window.col_off < b.window.col_off <= a.window.col_off + a.window.width  # no gap


def test_labels_burned_per_run_equal_labels_burned_per_window(scene, tmp_path):
    """The exporter burns a run of windows at once; each chip's labels equal a burn of its own window."""
    from geodefect.labels import RoadLabeler

    out = tmp_path / "chips"
    _run(scene, out, val_fraction=0.0, size_px=64, stride_px=48)
    idx = _index(out)
    with rasterio.open(scene.image) as src:
        lines = gpd.read_file(scene.centerlines).to_crs(src.crs)
        meta = json.loads((out / "meta.json").read_text())
        labeler = RoadLabeler(lines, src.crs, buffer_m=meta["label"]["buffer_m"],
                              width_px=meta["orientation"]["width_px"], bin_deg=meta["orientation"]["bin_deg"])
        n_road = 0
        for row in idx.itertuples():
            with rasterio.open(out / row.label) as m, rasterio.open(out / row.orientation) as o:
                own = labeler.burn(m.transform, m.height, m.width)
                np.testing.assert_array_equal(m.read(1), own.mask)
                np.testing.assert_array_equal(o.read(1), own.orientation)
                n_road += int(own.mask.any())
    assert n_road >= 3
