"""`geodefect chip` (roads): refused input leaves nothing behind; the happy-path surprises of issue 17."""

from __future__ import annotations

import errno
import json

import numpy as np
from click.testing import CliRunner

from geodefect.cli.main import cli
from geodefect.testing.tiny import make_tiny_scene, write_tiny_geotiff


def invoke(*args):
    return CliRunner().invoke(cli, ["chip", *map(str, args)])


def one_error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_bad_label_option_leaves_no_folder_and_the_fixed_rerun_works(tmp_path):
    s = make_tiny_scene(tmp_path / "s")
    out = tmp_path / "chips"
    line = one_error_line(invoke(s.image, "--centerlines", s.centerlines, "-o", out, "--buffer-m", "-2",
                                 "--size-px", "64", "-q"))
    assert "buffer_m" in line
    assert not out.exists()
    res = invoke(s.image, "--centerlines", s.centerlines, "-o", out, "--buffer-m", "2", "--size-px", "64", "-q")
    assert res.exit_code == 0, res.output


def test_stride_defaults_to_three_quarters_of_the_size(tmp_path):
    s = make_tiny_scene(tmp_path / "s", height_px=300, width_px=300)
    out = tmp_path / "chips"
    res = invoke(s.image, "--centerlines", s.centerlines, "-o", out, "--size-px", "256", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "meta.json").read_text())["stride_px"] == 192


def test_all_nodata_raster_is_an_error_and_leaves_nothing(tmp_path):
    s = make_tiny_scene(tmp_path / "s")
    empty = tmp_path / "nodata.tif"
    write_tiny_geotiff(empty, np.zeros((3, 200, 260), np.uint8), nodata=0)
    out = tmp_path / "chips"
    line = one_error_line(invoke(empty, "--centerlines", s.centerlines, "-o", out, "--size-px", "64", "-q"))
    assert "no chip was kept" in line and "nodata" in line
    assert not out.exists()


def test_full_disk_is_one_line_naming_the_path(tmp_path, monkeypatch):
    from geodefect.io import chip_writer

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(chip_writer.ChipWriter, "write", full)
    s = make_tiny_scene(tmp_path / "s")
    out = tmp_path / "chips"
    line = one_error_line(invoke(s.image, "--centerlines", s.centerlines, "-o", out, "--size-px", "64", "-q"))
    assert "no space left" in line and str(out) in line and "ENOSPC" in line


def test_vegas_sample_gets_a_validation_split(shared_data, tmp_path):
    """One 1300-px tile: the default 4-stride blocks give one block; the split falls back to smaller ones."""
    out = tmp_path / "vegas"
    res = invoke("--dataset", "spacenet_vegas_sample", "-o", out)
    assert res.exit_code == 0, res.output
    assert "split by blocks of" in res.output
    split = json.loads((out / "meta.json").read_text())["split"]
    assert split["n_val"] > 0 and split["n_train"] > 0 and split["block_px"] < 4 * 384


def test_index_gpkg_stores_an_outline_style_by_split(tmp_path):
    import sqlite3

    s = make_tiny_scene(tmp_path / "s")
    out = tmp_path / "chips"
    assert invoke(s.image, "--centerlines", s.centerlines, "-o", out, "--size-px", "64", "-q").exit_code == 0
    with sqlite3.connect(out / "index.gpkg") as con:
        rows = list(con.execute("SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault = 1"))
    assert [r[0] for r in rows] == ["chips"]
    qml = rows[0][1]
    assert 'attr="split"' in qml and 'value="train"' in qml and 'value="val"' in qml
    assert '"style" value="no"' in qml  # no fill: the imagery under the footprints stays visible


def test_uneven_blocks_still_give_train_and_val(tmp_path):
    """200 x 260 px at stride 48: two blocks of 192 px, the val one took every train window."""
    s = make_tiny_scene(tmp_path / "s")
    out = tmp_path / "chips"
    res = invoke(s.image, "--centerlines", s.centerlines, "-o", out, "--size-px", "64", "--stride-px", "48")
    assert res.exit_code == 0, res.output
    split = json.loads((out / "meta.json").read_text())["split"]
    assert split["n_train"] > 0 and split["n_val"] > 0 and split["block_px"] == 96
