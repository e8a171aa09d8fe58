"""Exit codes: 2 for a malformed command line (as click), 1 for bad data; nothing written either way."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from geodefect.cli.main import cli
from geodefect.testing.tiny import make_tiny_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_tiny_scene(tmp_path_factory.mktemp("codes"))


@pytest.mark.parametrize("args", [
    ["chip", "-o", "{out}"],  # no IMAGE, no --dataset
    ["chip", "{image}", "-o", "{out}"],  # no --centerlines
    ["chip", "{image}", "--centerlines", "{lines}", "--dataset", "demo", "-o", "{out}"],  # both
    ["chip", "{image}", "--centerlines", "{lines}", "-o", "{out}", "--no-such-flag"],
    ["chip", "{image}", "--centerlines", "{lines}", "-o", "{out}", "--size-px", "big"],
    ["chip", "{image}", "--centerlines", "{lines}"],  # no -o
    ["evaluate", "--truth", "{lines}"],  # no --pred
])
def test_malformed_command_lines_exit_2(scene, tmp_path, args):
    out = tmp_path / "out"
    filled = [a.format(out=out, image=scene.image, lines=scene.centerlines) for a in args]
    res = CliRunner().invoke(cli, filled)
    assert res.exit_code == 2, res.output
    assert "Error:" in res.output and "Traceback" not in res.output
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["chip", "{tmp}/missing.tif", "--centerlines", "{lines}", "-o", "{out}"],  # a file that is not there
    ["chip", "{image}", "--centerlines", "{lines}", "-o", "{out}", "--stride-px", "-3"],  # a bad value
    ["chip", "{lines}", "--centerlines", "{lines}", "-o", "{out}"],  # not a raster
])
def test_bad_data_exit_1(scene, tmp_path, args):
    out = tmp_path / "out"
    filled = [a.format(out=out, image=scene.image, lines=scene.centerlines, tmp=tmp_path) for a in args]
    res = CliRunner().invoke(cli, filled)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error:") and "Traceback" not in res.output
    assert not out.exists()
