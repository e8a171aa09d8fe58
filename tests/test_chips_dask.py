"""``geodefect chip --scheduler processes:2``: one unit per raster, the same chips, index and statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pyogrio
import pytest
import rasterio
from click.testing import CliRunner

from geodefect.cli.main import cli


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from geodefect.testing.tiny import make_tiny_scene

    root = tmp_path_factory.mktemp("chipscenes")
    return [make_tiny_scene(root / f"s{i}", road_rows=(50 + 30 * i,), road_cols=(120,), seed=i) for i in range(3)]


def chip(scenes, out: Path, *extra):
    lines = scenes[0].centerlines
    args = ["chip", *[str(s.image) for s in scenes], "--centerlines", str(lines), "-o", str(out), "--size-px", "64",
            "--stride-px", "48", "--keep-empty", "1", "-q", *extra]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return res


def _same_chips(local: Path, dask: Path) -> list:
    """The same chip files byte for byte, the same statistics and index; returns the files."""
    files = sorted(p.relative_to(local) for p in local.rglob("*.tif"))
    assert files and files == sorted(p.relative_to(dask) for p in dask.rglob("*.tif"))
    for f in files:
        assert (local / f).read_bytes() == (dask / f).read_bytes(), f
    ml, md = json.loads((local / "meta.json").read_text()), json.loads((dask / "meta.json").read_text())
    for key in ("mean", "std", "n_chips", "split", "road_km", "sources"):
        assert ml[key] == md[key], key
    il = pyogrio.read_dataframe(local / "index.gpkg", layer="chips")
    idx = pyogrio.read_dataframe(dask / "index.gpkg", layer="chips")
    assert il.drop(columns="geometry").equals(idx.drop(columns="geometry"))
    return files


def test_two_workers_write_the_same_chips_index_and_statistics(scenes, tmp_path):
    chip(scenes, tmp_path / "local")
    chip(scenes, tmp_path / "dask", "--scheduler", "processes:2")
    files = _same_chips(tmp_path / "local", tmp_path / "dask")  # byte-identical files, index, statistics
    assert any(f.parts[0] == "labels" for f in files) and any(f.parts[0] == "images" for f in files)


def test_a_bad_scheduler_writes_nothing(scenes, tmp_path):
    res = CliRunner().invoke(cli, ["chip", str(scenes[0].image), "--centerlines", str(scenes[0].centerlines),
                                   "-o", str(tmp_path / "x"), "--scheduler", "threads:4"])
    assert res.exit_code == 1 and "processes:N" in res.output
    assert not (tmp_path / "x").exists()


def test_pan_sharpened_sources_reach_the_workers(tmp_path):
    """A pan-sharpened source lives in the client's /vsimem: the unit recreates the same VRT."""
    import numpy as np
    from shapely.geometry import LineString

    from geodefect.testing.tiny import write_lines, write_tiny_geotiff

    rng = np.random.default_rng(0)
    pan = rng.integers(200, 1800, size=(1, 128, 128)).astype(np.uint16)
    mul = np.stack([np.full((32, 32), v, np.uint16) for v in (100, 200, 300, 400, 500, 600, 700, 800)])
    write_tiny_geotiff(tmp_path / "pan.tif", pan, pixel_size_m=0.5)
    write_tiny_geotiff(tmp_path / "mul.tif", mul, pixel_size_m=2.0)
    with rasterio.open(tmp_path / "pan.tif") as ds:
        b = ds.bounds
    lines = write_lines(tmp_path / "roads.geojson", [LineString([(b.left, (b.bottom + b.top) / 2),
                                                                (b.right, (b.bottom + b.top) / 2)])])
    outs = []
    for name, extra in (("local", []), ("dask", ["--scheduler", "processes:1"])):
        res = CliRunner().invoke(cli, ["chip", str(tmp_path / "pan.tif"), "--pan-sharpen", str(tmp_path / "mul.tif"),
                                       "--centerlines", str(lines), "-o", str(tmp_path / name), "--size-px", "64",
                                       "--stride-px", "64", "--keep-empty", "1", "-q", *extra])
        assert res.exit_code == 0, res.output
        outs.append(json.loads((tmp_path / name / "meta.json").read_text()))
    assert outs[0]["n_chips"] == outs[1]["n_chips"] > 0 and outs[0]["mean"] == outs[1]["mean"]


def test_blocks_of_one_raster_write_the_same_chips(scenes, tmp_path):
    """--block-px 64 cuts each 200 x 260 px raster into 12 units: the same files, index and statistics."""
    chip(scenes, tmp_path / "local")
    chip(scenes, tmp_path / "dask", "--scheduler", "processes:2", "--block-px", "64")
    assert len(_same_chips(tmp_path / "local", tmp_path / "dask")) > 20


def test_window_blocks_cover_every_window_once():
    from rasterio.windows import Window

    from geodefect.chips.distributed import window_blocks
    from geodefect.windows import iter_windows

    windows = list(iter_windows(300, 500, size_px=64, stride_px=48))
    units = window_blocks(windows, 128)
    assert len(units) == 2 * 4  # origins up to row 236, column 436
    assert sorted(i for u in units for i in u) == list(range(len(windows)))
    assert window_blocks(windows, 0) == [None] and window_blocks([Window(0, 0, 64, 64)], 128) == [None]


@pytest.fixture(scope="module")
def big_scenes(tmp_path_factory):
    """Scenes whose unit takes long enough (400 windows each) to be caught mid-way."""
    from geodefect.testing.tiny import make_tiny_scene

    root = tmp_path_factory.mktemp("bigchipscenes")
    return [make_tiny_scene(root / f"b{i}", height_px=1000, width_px=1000, road_rows=(300 + 100 * i,),
                            road_cols=(500,), seed=i) for i in range(2)]


def test_a_worker_killed_mid_run_leaves_the_same_chips_and_no_temporaries(big_scenes, tmp_path):
    """SIGKILL the worker that is writing chips: its unit is retried (resuming the chips it finished)
    and the export ends as one undisturbed run, with no temporary file of the dead worker left."""
    import os
    import signal
    import threading
    import time

    from dask.distributed import Client, LocalCluster

    chip(big_scenes, tmp_path / "local")
    out = tmp_path / "dask"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = client.run(os.getpid)
        killed = []

        def kill_a_busy_worker():
            deadline = time.time() + 60
            while time.time() < deadline and not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy and len(list((out / "images").glob("[!.]*.tif"))) >= 20:
                    # what the worker would leave when killed inside a chip's write
                    (out / "labels" / f".tmp-{pids[busy[0]]}-half.tif").write_bytes(b"half")
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        chip(big_scenes, out, "--scheduler", cluster.scheduler_address)
        killer.join(timeout=60)
    assert killed, "no worker was caught writing chips"
    _same_chips(tmp_path / "local", out)
    assert not [p for p in out.rglob(".tmp-*")]


def test_an_interrupted_export_resumes_on_a_cluster(scenes, tmp_path, monkeypatch):
    """Interrupted in one process, finished by `processes:2`: the finished chips are kept as they are."""
    from geodefect.chips import export as chips

    chip(scenes, tmp_path / "ref")
    out = tmp_path / "out"
    calls = {"n": 0}
    original = chips.ChipExporter.export_window

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 8:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(chips.ChipExporter, "export_window", interrupted)
    res = CliRunner().invoke(cli, ["chip", *[str(s.image) for s in scenes], "--centerlines", str(scenes[0].centerlines),
                                   "-o", str(out), "--size-px", "64", "--stride-px", "48", "--keep-empty", "1", "-q",
                                   "--workers", "1"])
    assert res.exit_code == 130  # interrupted (Ctrl-C)
    monkeypatch.setattr(chips.ChipExporter, "export_window", original)
    done = {p: p.stat().st_mtime_ns for p in (out / "images").glob("[!.]*.tif")}
    assert 0 < len(done) <= 8 and not (out / "meta.json").exists()
    res = chip(scenes, out, "--scheduler", "processes:2")
    assert f"{len(done)} kept from an interrupted run" in res.output
    assert {p: p.stat().st_mtime_ns for p in done} == done
    _same_chips(tmp_path / "ref", out)
