"""Leave-one-domain-out on tiny synthetic countries; classifier train/evaluate/infer/chip workflows."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from geodefect.cli.main import cli
from geodefect.errors import ConfigError
from geodefect.tasks import get_task
from geodefect.tasks.damage_lodo import leave_one_domain_out
from geodefect.testing.damage import make_damage_dataset
from geodefect.workflows.chip import chip as chip_workflow
from geodefect.workflows.infer import infer as infer_workflow
from geodefect.workflows.train import train

TINY = {"backbone": "vgg16", "width_mult": 0.125, "epochs": 1, "batch_size": 8, "steps_per_epoch": 2, "device": "cpu"}


def evaluate(model, data, out):
    return get_task("damage_classify").evaluate_model(model, data, out)


def infer(model, images, out, recipe=None, overrides=None):
    return infer_workflow(model, images, out, overrides=overrides)


def chip(data, out, overrides=None):
    return chip_workflow([data], out, task="damage_classify", overrides=overrides)


@pytest.fixture(scope="module")
def rdd(tmp_path_factory):
    return make_damage_dataset(tmp_path_factory.mktemp("rdd"), countries=("A", "B", "C"), n_images=4, size_px=160)


def test_lodo_table_through_the_cli(rdd, tmp_path):
    out = tmp_path / "lodo"
    args = ["evaluate", "--leave-one-domain-out", str(rdd), "-o", str(out), "--backbone", "vgg16", "--width-mult",
            "0.125", "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--device", "cpu",
            "--losses", "ce,ct,dg", "-q"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "| unseen domain |" in r.output and "| C |" in r.output
    with (out / "lodo.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["domain"] for r in rows] == ["A", "B", "C", "average"]
    for r in rows[:3]:
        assert 0 <= float(r["precision"]) <= 1 and 0 <= float(r["f1"]) <= 1
    avg = sum(float(r["f1"]) for r in rows[:3]) / 3
    assert float(rows[3]["f1"]) == pytest.approx(avg, abs=1e-4)
    data = json.loads((out / "lodo.json").read_text())
    assert data["losses"] == "ce,ct,dg" and data["classes"] == ["D00", "D10", "D20", "D40"]
    for r in data["rows"]:  # the held-out domain never enters its fold's training
        recipe_domains = json.loads(json.dumps(r))  # rows are plain JSON
        assert recipe_domains["n_test"] > 0
    from geodefect.models.checkpoint import read_recipe

    assert read_recipe(out / "runs" / "B" / "best.pt")["domains"] == ["A", "C"]
    md = (out / "lodo.md").read_text()
    assert "| unseen domain |" in md and "| vgg16 ce,ct,dg |" in md


def test_lodo_needs_two_domains(rdd, tmp_path):
    from geodefect.errors import InputError

    with pytest.raises(InputError, match="at least 2 domains"):
        leave_one_domain_out(rdd, tmp_path / "x", overrides={**TINY, "domains": "A"})


def test_train_evaluate_infer_chip(rdd, tmp_path):
    run = train(rdd, tmp_path / "run", overrides={**TINY, "losses": "ce,ct"})
    summary = evaluate(run["best"], rdd, tmp_path / "ev")
    assert set(summary["metrics"]) == {"A", "B", "C", "all"}
    assert (tmp_path / "ev" / "metrics.csv").is_file()
    images = sorted((rdd / "A" / "train" / "images").glob("*.jpg"))[:2]
    from geodefect.models.checkpoint import read_recipe

    out = infer(run["best"], images, tmp_path / "inf", recipe=read_recipe(run["best"]))
    with (tmp_path / "inf" / "predictions.csv").open() as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 2 and preds[0]["class"] in ("D00", "D10", "D20", "D40")
    assert out["n_images"] == 2
    with pytest.raises(ConfigError, match="review"):
        infer(run["best"], images, tmp_path / "inf2", recipe=read_recipe(run["best"]), overrides={"review": 2})
    meta = chip(rdd, tmp_path / "crops", overrides={"domains": "A,B"})
    assert meta["domains"] == ["A", "B"]
    assert sum(len(list((tmp_path / "crops" / "A" / c).glob("*.png"))) for c in meta["counts"]["A"]) == sum(meta["counts"]["A"].values())
    run2 = train(tmp_path / "crops", tmp_path / "run2", overrides=TINY)  # the generic DOMAIN/CLASS layout
    assert read_recipe(run2["best"])["domains"] == ["A", "B"]


def test_lodo_cli_errors(rdd, tmp_path):
    r = CliRunner().invoke(cli, ["evaluate", "--leave-one-domain-out", str(rdd), "-o", str(tmp_path / "x"), "--losses", "ct"])
    assert r.exit_code == 1 and "losses" in r.output
    r = CliRunner().invoke(cli, ["evaluate", "--leave-one-domain-out", str(rdd)])
    assert r.exit_code != 0 and "--out-dir" in r.output


def test_bad_losses_option(rdd, tmp_path):
    with pytest.raises(ConfigError, match="losses"):
        train(rdd, tmp_path / "r", overrides={**TINY, "losses": "dg"})
    with pytest.raises(ConfigError, match="backbone"):
        train(rdd, tmp_path / "r", overrides={**TINY, "backbone": "resnet50"})


def test_synth_cli(tmp_path):
    r = CliRunner().invoke(cli, ["synth", "damage", str(tmp_path / "d"), "--countries", "X,Y", "--n-images", "2"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "d" / "Y" / "train" / "annotations" / "xmls").glob("*.xml"))) == 2
    r = CliRunner().invoke(cli, ["synth", "panoramas", str(tmp_path / "p"), "--n-images", "4"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p" / "labels.csv").read_text().count("\n") == 5
