"""`geodefect train` through the CLI on real `geodefect chip` output of a small synthetic scene."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml
from click.testing import CliRunner
from train_helpers import make_road_chips

from geodefect.cli.main import cli
from geodefect.models.checkpoint import load_package, read_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--model", "road_hourglass", "--width", "8", "--batch-size", "4", "--steps-per-epoch", "2", "-q"]


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    return make_road_chips(tmp_path_factory.mktemp("trainchips"), scene_px=256, seed=1)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_train_writes_a_complete_run(chips, tmp_path):
    run = tmp_path / "run"
    res = invoke("train", chips, "-o", run, "--epochs", "2", *TINY)
    assert res.exit_code == 0, res.output
    assert "best epoch" in res.output and "model.pt" in res.output
    for name in ("model.pt", "best.pt", "last.pt", "metrics.csv", "curves.png", "samples.png", "config.yaml"):
        assert (run / name).stat().st_size > 0, name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["road_iou"]) <= 1.0 and float(r["train_loss"]) > 0 for r in rows)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg = {**cfg["loop"], **cfg["task"]}  # config.yaml has the sections loop and task
    assert cfg["model"] == "road_hourglass" and cfg["width"] == 8 and cfg["epochs"] == 2
    meta = json.loads((chips / "meta.json").read_text())
    recipe = read_recipe(run / "model.pt")
    assert recipe["task"] == "roads"
    assert recipe["model"] == {"name": "road_hourglass", "kwargs": {"in_channels": 3, "n_classes": 19, "width": 8}}
    assert recipe["normalization"] == {"mean": meta["mean"], "std": meta["std"]}
    assert recipe["orientation"]["bin_deg"] == 20 and recipe["size_px"] == 32 and recipe["pixel_size_m"] == 0.3
    assert recipe["bands"] == [1, 2, 3] and recipe["label"]["mode"] == "buffer"
    assert recipe["orientation_trained"] is True
    assert recipe["training"]["epochs"] == 2 and "road_iou" in recipe["final_metrics"]
    model, _ = load_package(run / "model.pt")
    with torch.no_grad():
        out = model(torch.rand(1, 3, 40, 52))
    assert out.road.shape == (1, 1, 40, 52) and out.orientation.shape == (1, 19, 40, 52)


def test_resume_after_a_kill_ends_with_the_same_model(chips, tmp_path):
    from geodefect.workflows.train import train

    overrides = {"model": "road_hourglass", "width": 8, "batch_size": 4, "steps_per_epoch": 2, "epochs": 2,
                 "checkpoint_every_steps": 1}

    class Kill(Exception):
        pass

    def kill(info):
        if info.global_step == 3:
            raise Kill

    train(chips, tmp_path / "full", overrides=overrides)
    with pytest.raises(Kill):
        train(chips, tmp_path / "killed", overrides=overrides, callbacks=[kill])
    assert not (tmp_path / "killed" / "model.pt").exists()
    res = invoke("train", chips, "-o", tmp_path / "killed", "--resume", "-q")
    assert res.exit_code == 0, res.output
    a, _ = load_package(tmp_path / "full" / "model.pt")
    b, _ = load_package(tmp_path / "killed" / "model.pt")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    res = invoke("train", chips, "-o", tmp_path / "killed", "--resume", "--epochs", "5", "-q")
    assert res.exit_code == 1 and "cannot change epochs when resuming" in res.output


def test_existing_run_needs_overwrite(chips, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", chips, "-o", run, "--epochs", "1", *TINY).exit_code == 0
    res = invoke("train", chips, "-o", run, "--epochs", "1", *TINY)
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert invoke("train", chips, "-o", run, "--epochs", "1", "--overwrite", *TINY).exit_code == 0
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    res = invoke("train", chips, "-o", foreign, "--overwrite", *TINY)
    assert res.exit_code == 1 and "did not write" in res.output
    assert (foreign / "thesis.tex").exists()


def test_bad_inputs_exit_1_with_one_line(chips, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "meta.json").write_text(json.dumps({"task": "bridges"}))
    cases = [
        ((tmp_path / "missing", "-o", tmp_path / "r1"), "does not exist"),
        ((empty, "-o", tmp_path / "r2"), "no meta.json"),
        ((other, "-o", tmp_path / "r3"), "unknown task 'bridges'"),
        ((chips, "-o", tmp_path / "r4", "--model", "unet9"), "road_linknet, road_hourglass"),
        ((chips, "-o", tmp_path / "r5", "--resume"), "cannot resume"),
        ((chips, "-o", tmp_path / "r6", "--encoder", "resnet18", "--encoder-weights", "imagenet"), "offline"),
        ((chips, "-o", tmp_path / "r7", "--encoder-weights", tmp_path / "nope.pth"), "existing weights file"),
    ]
    for args, message in cases:
        res = invoke("train", *args, "-q")
        assert res.exit_code == 1, (args, res.output)
        assert message in res.output, (args, res.output)
        assert res.output.startswith("Error:") and "Traceback" not in res.output


def test_corrupt_checkpoint_and_config_keys(chips, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", chips, "-o", run, "--epochs", "1", *TINY).exit_code == 0
    (run / "last.pt").write_bytes(b"not a checkpoint")
    res = invoke("train", chips, "-o", run, "--resume", "-q")
    assert res.exit_code == 1 and "not a readable checkpoint" in res.output
    (run / "model.pt").write_bytes(b"\x00" * 10)
    from geodefect.errors import ModelPackageError

    with pytest.raises(ModelPackageError, match="not a readable geodefect model package"):
        load_package(run / "model.pt")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    res = invoke("train", chips, "-o", tmp_path / "r2", "--config", cfg, "-q")
    assert res.exit_code == 1 and "learning_rate" in res.output and "valid keys" in res.output


def test_nan_loss_is_a_clear_error(chips, tmp_path, monkeypatch):
    from geodefect.losses.roads import RoadLoss

    original = RoadLoss.__call__

    def nan_loss(self, output, batch):
        total, parts = original(self, output, batch)
        return total * float("nan"), parts

    monkeypatch.setattr(RoadLoss, "__call__", nan_loss)
    res = invoke("train", chips, "-o", tmp_path / "run", "--epochs", "1", *TINY)
    assert res.exit_code == 1 and "lower the learning rate" in res.output


def test_config_file_values_and_flags(chips, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("epochs: 1\nroad_loss: dice\nwidth: 8\nlr: 0.002\n")
    run = tmp_path / "run"
    res = invoke("train", chips, "-o", run, "--config", cfg, "--road-loss", "bce", "--orientation-weight", "0", *TINY)
    assert res.exit_code == 0, res.output
    assert read_recipe(run / "model.pt")["orientation_trained"] is False  # road only: infer ignores that head
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved = {**saved["loop"], **saved["task"]}  # config.yaml has the sections loop and task
    assert saved["road_loss"] == "bce" and saved["lr"] == 0.002 and saved["epochs"] == 1
