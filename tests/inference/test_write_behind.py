"""Road inference writes stitched blocks on a helper thread (write-behind) where a core is free:
same files, same errors."""

from __future__ import annotations

import threading

import numpy as np
import pyogrio
import pytest
import rasterio

from geodefect.inference import roads as road_infer
from geodefect.inference.backends import read_model_recipe
from geodefect.inference.road_outputs import RoadBlockWriter
from geodefect.sliding import threads
from geodefect.testing.tiny import make_tiny_scene, write_tiny_geotiff

OUTPUTS = ("road_prob.tif", "road_mask.tif", "orientation.tif")


@pytest.fixture(scope="module")
def holey_scene(tmp_path_factory):
    """Several 128-row blocks, roads both ways, and a nodata band the writer must read per thread."""
    scene = make_tiny_scene(tmp_path_factory.mktemp("wb"), height_px=300, width_px=220,
                            road_rows=(60, 200), road_cols=(110,))
    with rasterio.open(scene.image) as ds:
        data = ds.read()
    data[:, 140:150, :] = 0
    path = scene.image.with_name("holes.tif")
    write_tiny_geotiff(path, data, nodata=0)
    return path


def _run(model, image, out, monkeypatch, *, queue: int, record=None):
    monkeypatch.setattr(road_infer, "WRITE_BEHIND_BLOCKS", queue)
    monkeypatch.setattr(road_infer, "usable_cpus", lambda: 64)  # a core to spare for the writer
    if record is not None:
        write = RoadBlockWriter.write

        def recording(self, block):
            record.append(threading.current_thread().name)
            return write(self, block)

        monkeypatch.setattr(RoadBlockWriter, "write", recording)
    return road_infer.infer(model, [image], out, recipe=read_model_recipe(model), overrides={"batch_size": 2})


def test_write_behind_gives_the_same_files_as_writing_inline(road_model, holey_scene, tmp_path, monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    names: list[str] = []
    _run(road_model, holey_scene, tmp_path / "inline", monkeypatch, queue=0)
    _run(road_model, holey_scene, tmp_path / "behind", monkeypatch, queue=2, record=names)
    assert len(names) >= 3 and all(n.startswith("geodefect-write") for n in names)  # really on the helper
    for name in OUTPUTS:
        with rasterio.open(tmp_path / "inline" / name) as a, rasterio.open(tmp_path / "behind" / name) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))
    with rasterio.open(tmp_path / "behind" / "road_mask.tif") as ds:
        mask = ds.read(1)
    assert (mask[140:150] == 255).all() and (mask[200, 10:100] == 1).all()  # nodata kept, roads found
    roads = [pyogrio.read_dataframe(tmp_path / d / "roads.gpkg", layer="roads") for d in ("inline", "behind")]
    assert len(roads[0]) > 0
    assert list(roads[0].geometry.to_wkb()) == list(roads[1].geometry.to_wkb())


def test_a_failed_block_write_fails_the_run_and_leaves_nothing(road_model, holey_scene, tmp_path, monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    calls = []
    write = RoadBlockWriter.write

    def failing(self, block):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write(self, block)

    monkeypatch.setattr(RoadBlockWriter, "write", failing)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        _run(road_model, holey_scene, out, monkeypatch, queue=2)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(calls) == 2  # blocks after the failure were not written


def test_write_behind_only_where_the_writer_has_a_core_of_its_own(monkeypatch):
    import torch

    threads_now = torch.get_num_threads()
    monkeypatch.setattr(road_infer, "WRITE_BEHIND_BLOCKS", 2)
    monkeypatch.setattr(road_infer, "usable_cpus", lambda: threads_now)
    assert road_infer.write_behind_blocks("cpu") == 0  # the model's threads use every core: inline
    monkeypatch.setattr(road_infer, "usable_cpus", lambda: threads_now + 1)
    assert road_infer.write_behind_blocks("cpu") == 2
    monkeypatch.setattr(road_infer, "usable_cpus", lambda: threads_now)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert road_infer.write_behind_blocks("cuda") == 2  # the forward runs on the GPU
    monkeypatch.setattr(road_infer, "WRITE_BEHIND_BLOCKS", 0)
    assert road_infer.write_behind_blocks("cuda") == 0
    cfg, _ = road_infer.resolve_infer_config(None, {"device": "cpu"}, recipe={"size_px": 64})
    assert road_infer.sliding_params(cfg, {"size_px": 64}).held_blocks == 1


def test_the_gdal_block_cache_of_inference_is_megabytes_not_bytes():
    """rasterio.Env takes GDAL_CACHEMAX in bytes: 128 meant a 128-byte cache, and pan-sharpened
    inputs read through the resampling WarpedVRT took minutes per window."""
    import rasterio
    from rasterio._env import get_gdal_config

    with rasterio.Env(GDAL_CACHEMAX=road_infer.GDAL_CACHE_BYTES):
        assert int(get_gdal_config("GDAL_CACHEMAX")) >= 64 * 2**20


def test_the_next_forward_runs_ahead_only_on_a_gpu_or_in_onnx_runtime_with_a_core_free(monkeypatch):
    import torch

    cfg, _ = road_infer.resolve_infer_config(None, {"device": "cpu"}, recipe={"size_px": 64})
    onnx_recipe, pt_recipe = {"size_px": 64, "onnx": {"outputs": ["road"]}}, {"size_px": 64}
    monkeypatch.setattr(road_infer, "usable_cpus", lambda: torch.get_num_threads() + 1)
    assert road_infer.forward_ahead(cfg, onnx_recipe) and road_infer.sliding_params(cfg, onnx_recipe).predict_ahead
    assert not road_infer.forward_ahead(cfg, pt_recipe)  # a torch CPU forward stays on the caller's thread
    monkeypatch.setattr(road_infer, "usable_cpus", lambda: torch.get_num_threads())
    assert not road_infer.forward_ahead(cfg, onnx_recipe)  # no core free
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu, _ = road_infer.resolve_infer_config(None, {"device": "cuda"}, recipe={"size_px": 64})
    assert road_infer.forward_ahead(gpu, pt_recipe)


def test_an_onnx_forward_ahead_gives_the_same_files(road_model, holey_scene, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from geodefect.inference.onnx_runtime import OnnxPredictor
    from geodefect.workflows.export import export

    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    onnx = tmp_path / "m.onnx"
    export(road_model, onnx)
    names: list[str] = []
    call = OnnxPredictor.__call__

    def recording(self, batch):
        names.append(threading.current_thread().name)
        return call(self, batch)

    monkeypatch.setattr(OnnxPredictor, "__call__", recording)
    for folder, ahead in (("inline", False), ("ahead", True)):
        monkeypatch.setattr(road_infer, "forward_ahead", lambda cfg, recipe, a=ahead: a)
        _run(onnx, holey_scene, tmp_path / folder, monkeypatch, queue=2)
    assert sum(n.startswith("geodefect-forward") for n in names) >= 3
    for name in OUTPUTS:
        assert (tmp_path / "inline" / name).read_bytes() == (tmp_path / "ahead" / name).read_bytes(), name
    roads = [pyogrio.read_dataframe(tmp_path / d / "roads.gpkg", layer="roads") for d in ("inline", "ahead")]
    assert len(roads[0]) > 0 and list(roads[0].geometry.to_wkb()) == list(roads[1].geometry.to_wkb())
