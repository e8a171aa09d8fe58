"""``geodefect infer --scheduler``: a Dask LocalCluster of 2 workers gives the same files as one process,
a rerun after an interruption keeps the finished images, and bad schedulers are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from geodefect.cli.main import cli

RASTERS = ("road_prob.tif", "road_mask.tif", "orientation.tif")


@pytest.fixture(scope="module")
def hourglass_model(tmp_path_factory) -> Path:
    """A registered model (workers are other processes: test-only registrations do not reach them)."""
    import torch

    from geodefect.models.checkpoint import save_package
    from geodefect.models.registry import build_model

    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "n_classes": 19, "width": 8}
    model = build_model("road_hourglass", **kwargs)
    recipe = {"task": "roads", "model": {"name": "road_hourglass", "kwargs": kwargs}, "bands": [1, 2, 3],
              "normalization": {"mean": [128.0] * 3, "std": [40.0] * 3}, "size_px": 64, "stride_px": 48,
              "pixel_size_m": 0.5, "orientation": {"bin_deg": 20, "n_classes": 19}, "road_threshold": 0.5}
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_package(path, model=model, recipe=recipe)
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from geodefect.testing.tiny import make_tiny_scene

    root = tmp_path_factory.mktemp("scenes")
    return [make_tiny_scene(root / f"s{i}", road_rows=(60 + 20 * i,), road_cols=(150,), seed=i).image for i in range(3)]


def infer(model, images, out, *extra):
    res = CliRunner().invoke(cli, ["infer", str(model), *map(str, images), "-o", str(out), "--threads", "1", "-q",
                                   *map(str, extra)])
    return res


@pytest.fixture(scope="module")
def local_run(hourglass_model, scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    res = infer(hourglass_model, scenes, out)
    assert res.exit_code == 0, res.output
    return out


def _same_outputs(a: Path, b: Path, names) -> None:
    for name in names:
        for raster in RASTERS:
            assert (a / name / raster).read_bytes() == (b / name / raster).read_bytes(), f"{name}/{raster}"
        ra = gpd.read_file(a / name / "roads.gpkg", layer="roads")
        rb = gpd.read_file(b / name / "roads.gpkg", layer="roads")
        assert len(ra) == len(rb)
        assert sorted(ra.length.round(6)) == sorted(rb.length.round(6))


def test_two_workers_give_the_same_files_as_one_process(hourglass_model, scenes, local_run, tmp_path):
    out = tmp_path / "dask"
    res = infer(hourglass_model, scenes, out, "--scheduler", "processes:2")
    assert res.exit_code == 0, res.output
    _same_outputs(local_run, out, [Path(s).stem for s in scenes])
    assert not (tmp_path / ".partial-dask").exists()  # the work folder is gone once assembled


def test_a_rerun_keeps_finished_images(hourglass_model, scenes, local_run, tmp_path, monkeypatch):
    import geodefect.distributed as distributed

    out = tmp_path / "out"
    real = distributed.run_units

    def interrupted(client, fn, units, *, on_done=None):  # the client dies after the first image
        real(client, fn, units[:1], on_done=on_done)
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "run_units", interrupted)
    res = infer(hourglass_model, scenes, out, "--scheduler", "processes:1")
    assert res.exit_code == 130 and not out.exists()
    finished = list((tmp_path / ".partial-out" / "units").iterdir())
    assert [p.name for p in finished] == [Path(scenes[0]).stem]
    calls = []
    monkeypatch.setattr(distributed, "run_units", lambda c, fn, units, **kw: calls.append(len(units)) or real(c, fn, units, **kw))
    res = infer(hourglass_model, scenes, out, "--scheduler", "processes:1")
    assert res.exit_code == 0, res.output
    assert calls == [2]  # only the two unfinished images ran
    _same_outputs(local_run, out, [Path(s).stem for s in scenes])


@pytest.mark.parametrize("spec", ["threads:2", "processes:0", "processes"])
def test_bad_scheduler_is_a_one_line_error(hourglass_model, scenes, tmp_path, spec):
    res = infer(hourglass_model, scenes[:1], tmp_path / "x", "--scheduler", spec)
    assert res.exit_code == 1 and "scheduler" in res.output and "processes:N" in res.output
    assert not (tmp_path / "x").exists()


def test_a_worker_killed_mid_run_is_replaced_and_the_result_is_the_same(hourglass_model, scenes, local_run, tmp_path):
    """SIGKILL one worker while the units run: its unit is retried elsewhere, the files are the same."""
    import os
    import signal
    import threading
    import time

    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one_when_busy():
            deadline = time.time() + 60
            while time.time() < deadline and not any(client.processing().values()):
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

        killer = threading.Thread(target=kill_one_when_busy, daemon=True)
        killer.start()
        out = tmp_path / "out"
        res = infer(hourglass_model, scenes, out, "--scheduler", cluster.scheduler_address)
        killer.join(timeout=60)
    assert killed and res.exit_code == 0, res.output
    _same_outputs(local_run, out, [Path(s).stem for s in scenes])


def test_a_pan_sharpened_input_reaches_the_workers(hourglass_model, tmp_path):
    """--pan-sharpen makes a VRT in the client's /vsimem: the unit remakes it on the worker."""
    import numpy as np

    from geodefect.testing.tiny import write_tiny_geotiff

    rng = np.random.default_rng(0)
    write_tiny_geotiff(tmp_path / "pan.tif", rng.integers(60, 250, size=(1, 128, 128)).astype(np.uint8),
                       pixel_size_m=0.5)
    write_tiny_geotiff(tmp_path / "mul.tif", np.stack([np.full((32, 32), v, np.uint8) for v in (90, 120, 150, 180)]),
                       pixel_size_m=2.0)
    outs = []
    for name, extra in (("local", []), ("dask", ["--scheduler", "processes:1"])):
        res = infer(hourglass_model, [tmp_path / "pan.tif"], tmp_path / name, "--pan-sharpen", tmp_path / "mul.tif",
                    "--bands", "1,2,3", *extra)
        assert res.exit_code == 0, res.output
        outs.append(tmp_path / name)
    assert (outs[0] / "road_prob.tif").read_bytes() == (outs[1] / "road_prob.tif").read_bytes()
    run = json.loads((outs[1] / "run.json").read_text())
    assert run["images"][0]["image"] == str(tmp_path / "pan.tif")


# --- blocks of one raster as work units (--block-px) ------------------------------------------

BLOCK_ARGS = ("--threshold", "0.485")  # the random model's probabilities sit near 0.48: a network to compare


@pytest.fixture(scope="module")
def big_scene(hourglass_model, tmp_path_factory):
    """A 200 x 260 px scene and an AOI inside it (64-px windows at stride 48: 6 x 5 cores of 48 px at --block-px 64)."""
    import rasterio
    from road_infer_helpers import write_aoi

    from geodefect.testing.tiny import make_tiny_scene

    root = tmp_path_factory.mktemp("big")
    scene = make_tiny_scene(root / "scene", road_rows=(60, 150), road_cols=(150,), seed=5)
    with rasterio.open(scene.image) as ds:
        b = ds.bounds
    aoi = write_aoi(root / "aoi.geojson", (b.left + 9, b.bottom + 14, b.right - 21, b.top - 5))
    out = root / "local"
    res = infer(hourglass_model, [scene.image], out, "--aoi", aoi, *BLOCK_ARGS)
    assert res.exit_code == 0, res.output
    return scene.image, aoi, out


def _same_single(a: Path, b: Path) -> None:
    for raster in RASTERS:
        assert (a / raster).read_bytes() == (b / raster).read_bytes(), raster
    ra, rb = (gpd.read_file(d / "roads.gpkg", layer="roads") for d in (a, b))
    assert len(ra) == len(rb) > 5
    assert sorted(ra.length.round(6)) == sorted(rb.length.round(6))


@pytest.mark.parametrize("scheduler", ["processes:2", "local"])
def test_blocks_of_one_raster_give_the_same_files_as_one_process(hourglass_model, big_scene, tmp_path, scheduler):
    """``local`` runs the blocks of a raster larger than --block-px one after the other in this process."""
    image, aoi, local = big_scene
    out = tmp_path / "blocks"
    res = infer(hourglass_model, [image], out, "--aoi", aoi, *BLOCK_ARGS,
                "--scheduler", scheduler, "--block-px", "64")
    assert res.exit_code == 0, res.output
    _same_single(local, out)
    entry = json.loads((out / "run.json").read_text())["images"][0]
    assert entry["blocks"] >= 12  # cores of 48 px that the AOI box reaches
    assert entry["area_km2"] == json.loads((local / "run.json").read_text())["images"][0]["area_km2"]
    assert not (tmp_path / ".partial-blocks").exists()


@pytest.mark.parametrize("scheduler", ["processes:1", "local"])
def test_a_rerun_keeps_finished_blocks(hourglass_model, big_scene, tmp_path, monkeypatch, scheduler):
    import geodefect.distributed as distributed

    image, aoi, local = big_scene
    model = hourglass_model
    args = ("--aoi", aoi, *BLOCK_ARGS, "--scheduler", scheduler, "--block-px", "64")
    out = tmp_path / "out"
    real = distributed.run_units

    def interrupted(client, fn, units, *, on_done=None):  # the client dies after three blocks
        real(client, fn, units[:3], on_done=on_done)
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "run_units", interrupted)
    res = infer(model, [image], out, *args)
    assert res.exit_code == 130 and not out.exists()
    done = [p for p in (tmp_path / ".partial-out" / "blocks").glob("*/*") if (p / "entry.json").is_file()]
    assert len(done) == 3
    calls = []
    monkeypatch.setattr(distributed, "run_units", lambda c, fn, units, **kw: calls.append(len(units)) or real(c, fn, units, **kw))
    res = infer(model, [image], out, *args)
    assert res.exit_code == 0, res.output
    n_blocks = json.loads((out / "run.json").read_text())["images"][0]["blocks"]
    assert calls == [n_blocks - 3]
    _same_single(local, out)


def test_a_corrupt_block_names_the_raster_and_the_block(hourglass_model, tmp_path):
    """An unreadable tile fails the job with one line naming both; the block leaves nothing finished."""
    import numpy as np
    import rasterio

    from geodefect.testing.tiny import write_tiny_geotiff

    arr = np.random.default_rng(2).integers(60, 250, (3, 192, 192)).astype("uint8")
    path = tmp_path / "broken.tif"
    write_tiny_geotiff(path, arr, tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))  # the middle tile
    data = bytearray(path.read_bytes())
    data[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    res = infer(hourglass_model, [path], tmp_path / "out", "--scheduler", "processes:1", "--block-px", "96")
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert "broken.tif" in lines[0] and "block rows" in lines[0] and "corrupt" in lines[0]
    assert not (tmp_path / "out").exists()
    partial = tmp_path / ".partial-out"
    assert not list(partial.glob("blocks/*/.tmp-*")) and not list(partial.glob("units/*"))


@pytest.mark.slow
def test_blocks_give_the_same_files_on_a_real_spacenet_tile(shared_data, tmp_path):
    """The shipped model on a pan-sharpened Las Vegas tile in 512 px blocks (on 2 workers, and one
    after the other in this process): the same files as one pass."""
    d = shared_data / "spacenet3_samples" / "AOI_2_Vegas_Roads_Sample"
    pan, mul = d / "PAN" / "PAN_AOI_2_Vegas_img1454.tif", d / "MUL" / "MUL_AOI_2_Vegas_img1454.tif"
    outs = []
    for name, extra in (("local", ()), ("blocks", ("--scheduler", "processes:2", "--block-px", "512")),
                        ("local-blocks", ("--block-px", "512"))):
        res = infer("spacenet3-roads", [pan], tmp_path / name, "--pan-sharpen", mul, *extra)
        assert res.exit_code == 0, res.output
        outs.append(tmp_path / name)
    for blocks in outs[1:]:
        _same_single(outs[0], blocks)
        assert json.loads((blocks / "run.json").read_text())["images"][0]["blocks"] == 4
