"""`geodefect train`: refused or interrupted runs never block the corrected rerun (issue 17)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from train_helpers import make_road_chips

from geodefect.cli.main import cli
from geodefect.errors import OutputExistsError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--model", "road_hourglass", "--width", "8", "--batch-size", "4", "--steps-per-epoch", "1", "-q"]
OVERRIDES = {"model": "road_hourglass", "width": 8, "batch_size": 4, "steps_per_epoch": 1, "epochs": 1}


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    return make_road_chips(tmp_path_factory.mktemp("refusechips"), scene_px=128, seed=1)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("bad", [["--encoder-weights", "nope.pth"], ["--model", "unet9"]])
def test_refused_options_leave_no_run_folder(chips, tmp_path, bad):
    run = tmp_path / "run"
    res = invoke("train", chips, "-o", run, "--epochs", "1", "--steps-per-epoch", "1", "-q", *bad)
    assert res.exit_code == 1 and res.output.startswith("Error:") and "Traceback" not in res.output, res.output
    assert not run.exists()


def test_last_pt_is_written_before_best_pt(chips, tmp_path, monkeypatch):
    """A kill between the two files must leave a resumable run."""
    from geodefect.training import loop
    from geodefect.workflows.train import train

    class Kill(Exception):
        pass

    def killed_while_saving_best(*a, **k):
        raise Kill

    monkeypatch.setattr(loop, "save_best", killed_while_saving_best)
    with pytest.raises(Kill):
        train(chips, tmp_path / "run", overrides=OVERRIDES)
    assert (tmp_path / "run" / "last.pt").is_file()


def test_a_folder_without_resumable_state_counts_as_empty(chips, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", chips, "-o", run, "--epochs", "1", *TINY).exit_code == 0
    (run / "last.pt").unlink()
    (run / "model.pt").unlink()  # what a kill after the first best.pt left before the fix
    res = invoke("train", chips, "-o", run, "--resume", *TINY)
    assert res.exit_code == 1 and "train without --resume" in res.output
    res = invoke("train", chips, "-o", run, "--epochs", "1", *TINY)  # the advice works
    assert res.exit_code == 0, res.output
    assert (run / "model.pt").is_file()


def test_run_folder_is_checked_before_joining_the_process_group(chips, tmp_path, monkeypatch):
    """Under torchrun every rank must stop with the same one-line error before any collective."""
    from geodefect.training import state
    from geodefect.workflows.train import train

    run = tmp_path / "run"
    train(chips, run, overrides=OVERRIDES)

    def no_group(device):
        raise AssertionError("joined the process group before checking RUN_DIR")

    monkeypatch.setattr(state, "setup_distributed", no_group)
    with pytest.raises(OutputExistsError, match="already exists"):
        train(chips, run, overrides=OVERRIDES)


def test_not_a_chip_folder_says_how_to_make_one(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    res = invoke("train", folder, "-o", tmp_path / "run", "-q")
    assert res.exit_code == 1 and "no meta.json" in res.output and "geodefect chip" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_broken_chip_images_leave_no_run_folder(chips, tmp_path, damage):
    import shutil

    copy = tmp_path / "chips"
    shutil.copytree(chips, copy)
    victim = sorted((copy / "images").glob("*.tif"))[0]
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:200])
    run = tmp_path / "run"
    res = invoke("train", copy, "-o", run, "--epochs", "1", *TINY)
    assert res.exit_code == 1 and res.output.startswith("Error:") and "Traceback" not in res.output, res.output
    assert victim.name in res.output
    assert not run.exists()


def test_torchrun_ranks_all_stop_with_the_same_line(chips, tmp_path):
    """Two CPU ranks, an existing run: the one-line error (from each rank that gets to print it); no traceback."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")  # an existing run (never read: the check comes first)
    (run / "config.yaml").write_text("loop: {}\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([str(torchrun if torchrun.exists() else "torchrun"), "--standalone", "--nproc-per-node", "2",
                           "-m", "geodefect.cli.main", "train", str(chips), "-o", str(run), "--device", "cpu", "-q"],
                          capture_output=True, text=True, env=env, timeout=300)
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error:")]
    assert proc.returncode != 0
    # torchrun SIGTERMs the other rank as soon as one fails: on a loaded machine the slower rank
    # is stopped before it prints, so one or two lines, never two different ones
    assert len(errors) in (1, 2) and len(set(errors)) == 1 and "already exists" in errors[0], proc.stderr[-2000:]
    assert "geodefect/" not in proc.stderr.replace("geodefect.cli.main", "")  # no frame of ours: ranks stopped cleanly
