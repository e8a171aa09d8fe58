"""`geodefect chip` over an image folder holding a file that is not an image: one line naming it (issue 17)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from geodefect.cli.main import cli


@pytest.mark.parametrize(("which", "task", "extra"), [("images", "crack_segment", ["--size-px", "64"]),
                                                      ("images", "crack_classify", ["--input-px", "64"]),
                                                      ("masks", "crack_segment", ["--size-px", "64"])])
def test_a_corrupt_file_is_named(tmp_path, which, task, extra):
    data = tmp_path / "data"
    res = CliRunner().invoke(cli, ["synth", "cracks", str(data), "--n-images", "3", "--height-px", "64",
                                   "--width-px", "64", "-q"])
    assert res.exit_code == 0, res.output
    bad = sorted((data / which).iterdir())[1]
    bad.write_bytes(b"this is no image")
    out = tmp_path / "chips"
    res = CliRunner().invoke(cli, ["chip", str(data / "images"), "--masks", str(data / "masks"), "--task", task,
                                   *extra, "-o", str(out), "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert str(bad) in res.output and "not a readable image" in res.output
    assert not out.exists()


def test_a_catalog_dataset_without_its_data_says_where_it_was_expected(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODEFECT_DATA", str(tmp_path / "nodata"))
    out = tmp_path / "chips"
    res = CliRunner().invoke(cli, ["chip", "--dataset", "nuaacrack2000", "-o", str(out), "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert str(tmp_path / "nodata" / "NUAACrack-2000" / "images") in res.output
    assert "GEODEFECT_DATA" in res.output and "ONE image folder" not in res.output
    assert not out.exists()
