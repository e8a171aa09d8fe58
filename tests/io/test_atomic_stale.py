"""Temporaries left by a killed run are removed by the next write of the same output (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys

from geodefect.io.atomic import atomic_dir, atomic_path, write_text_atomic


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_the_same_output_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    stale_file = tmp_path / f".tmp-index-{dead}-abcd1234.gpkg"
    stale_file.write_text("half")
    running = tmp_path / f".tmp-index-{alive}-abcd1234.gpkg"  # a live writer's: kept
    running.write_text("busy")
    other = tmp_path / f".tmp-roads-{dead}-abcd1234.gpkg"  # another output's: kept
    other.write_text("x")
    stale_dir = tmp_path / f".tmp-out-{dead}-zz_y9x8w"
    (stale_dir / "sub").mkdir(parents=True)
    write_text_atomic(tmp_path / "index.gpkg", "done")
    assert not stale_file.exists() and running.exists() and other.exists()
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
    assert not stale_dir.exists() and (tmp_path / "out" / "a.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["index.gpkg", "out", running.name, other.name])


def test_temporary_names_carry_the_pid(tmp_path):
    with atomic_path(tmp_path / "x.tif") as tmp:
        assert tmp.name.startswith(f".tmp-x-{os.getpid()}-") and tmp.suffix == ".tif"
        tmp.write_text("x")
