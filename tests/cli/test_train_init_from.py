"""`geodefect train --init-from PACKAGE` (fine-tuning): matching packages start the run, others are refused."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from train_helpers import make_road_chips

from geodefect.cli.main import cli
from geodefect.models.checkpoint import load_package, read_recipe, save_package

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--model", "road_hourglass", "--width", "8", "--batch-size", "4", "--steps-per-epoch", "1", "--epochs", "1", "-q"]


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    return make_road_chips(tmp_path_factory.mktemp("initchips"), scene_px=128, seed=2, split_block_px=64)


@pytest.fixture(scope="module")
def base(chips, tmp_path_factory):
    run = tmp_path_factory.mktemp("base") / "run"
    res = CliRunner().invoke(cli, ["train", str(chips), "-o", str(run), *TINY], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return run / "model.pt"


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_init_from_starts_from_the_package_weights(chips, base, tmp_path):
    from geodefect.models.pretrained import init_from_package
    from geodefect.models.registry import build_model

    recipe = read_recipe(base)
    fresh = build_model(recipe["model"]["name"], **recipe["model"]["kwargs"])
    init_from_package(fresh, base, task="roads", recipe={**recipe})
    src, _ = load_package(base)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), src.state_dict().values(), strict=True))
    res = _invoke("train", chips, "-o", tmp_path / "tuned", "--init-from", base, *TINY)
    assert res.exit_code == 0, res.output
    assert read_recipe(tmp_path / "tuned" / "model.pt")["init_from"] == str(base)


def test_init_from_another_architecture_is_refused_before_anything_is_written(chips, base, tmp_path):
    run = tmp_path / "wide"
    args = [a if a != "8" else "16" for a in TINY]  # --width 16
    res = _invoke("train", chips, "-o", run, "--init-from", base, *args)
    assert res.exit_code == 1
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "road_hourglass" in errors[0] and "width=16" in errors[0] and "width=8" in errors[0]
    assert not run.exists()


def test_init_from_another_task_or_bands_is_refused(chips, base, tmp_path):
    model, recipe = load_package(base)
    save_package(tmp_path / "crack.pt", model=model, recipe={**recipe, "task": "crack_segment"})
    save_package(tmp_path / "gray.pt", model=model, recipe={**recipe, "bands": [1]})
    res = _invoke("train", chips, "-o", tmp_path / "r1", "--init-from", tmp_path / "crack.pt", *TINY)
    assert res.exit_code == 1 and "'crack_segment' model" in res.output
    res = _invoke("train", chips, "-o", tmp_path / "r2", "--init-from", tmp_path / "gray.pt", *TINY)
    assert res.exit_code == 1 and "bands [1]" in res.output
    res = _invoke("train", chips, "-o", tmp_path / "r3", "--init-from", "no-such-model", *TINY)
    assert res.exit_code == 1 and "spacenet3-roads" in res.output
