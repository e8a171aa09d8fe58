"""The task contract, parametrised over the registry: tiny synthetic data -> chip -> train 2 steps ->
resume refuses a changed option (and accepts a resume-free one) -> infer -> evaluate (where the task
scores), all through the CLI; plus a new segmentation task registered in a few lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from geodefect.cli.main import cli
from geodefect.tasks import TASKS, SegmentTask, register_task, unregister_task

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args) -> str:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def fails(*args) -> str:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 1, res.output
    return res.output


def _roads(root: Path):
    from geodefect.testing.scenes import make_road_scene

    scene = make_road_scene(root / "scene", size_px=256, seed=1)
    run("chip", scene.image, "--centerlines", scene.centerlines, "--size-px", 32, "--stride-px", 32,
        "--keep-empty", 1, "--val-fraction", 0.3, "-o", root / "chips", "-q")
    options = ["--model", "road_hourglass", "--width", 8, "--batch-size", 4]
    return root / "chips", options, [scene.image, "--aoi", scene.aoi, "--size-px", 64], scene


def _images(task: str, root: Path):
    from geodefect.testing.cracks import make_crack_dataset
    from geodefect.testing.rail import make_rail_dataset

    if task == "rail_segment":
        d = make_rail_dataset(root / "data", n_images=4, height_px=120, width_px=48, seed=2)
        chip = ["--strip-height-px", 40]
        options = ["--model", "rail_vgg_fcn", "--width-mult", 0.125]
    else:
        d = make_crack_dataset(root / "data", n_images=4, height_px=48, width_px=48, seed=2)
        chip = ["--size-px", 32, "--stride-px", 32] if task != "crack_classify" else ["--input-px", 32]
        options = ["--variant", "tiny"] if task == "crack_classify" else ["--encoder", "resnet18"]
    run("chip", d.images, "--masks", d.masks, "--task", task, *chip, "--val-fraction", 0.5, "-o", root / "chips", "-q")
    return root / "chips", [*options, "--batch-size", 2], [d.images], d


def _damage(root: Path):
    from geodefect.testing.damage import make_damage_dataset

    rdd = make_damage_dataset(root / "rdd", countries=("A", "B"), n_images=3, size_px=128)
    images = sorted((rdd / "A" / "train" / "images").glob("*.jpg"))[:2]
    return rdd, ["--backbone", "vgg16", "--width-mult", 0.125, "--batch-size", 8], images, rdd


def _panorama(root: Path):
    from geodefect.testing.damage import make_panoramas

    rdd, stage1_options, _, _ = _damage(root)
    run("train", rdd, "-o", root / "stage1", *stage1_options, "--epochs", 1, "--steps-per-epoch", 2,
        "--background-per-image", 1, "--device", "cpu", "-q")
    panos = make_panoramas(root / "panos", n_images=4, height_px=64, width_px=128, seed=1)
    return panos.root, ["--stage1", root / "stage1" / "best.pt", "--batch-size", 2], [panos.root / "images"], panos


DATA = {"roads": lambda task, root: _roads(root), "damage_classify": lambda task, root: _damage(root),
        "panorama_stack": lambda task, root: _panorama(root)}


def make_data(task: str, root: Path):
    return DATA.get(task, _images)(task, root)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_contract(task, tmp_path):
    data, options, infer_inputs, _ = make_data(task, tmp_path)
    base = [*options, "--steps-per-epoch", 2, "--device", "cpu", "--threads", 1, "-q"]
    run("train", data, "-o", tmp_path / "run", "--epochs", 1, *base)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert set(saved) == {"loop", "task"} and saved["loop"]["epochs"] == 1 and saved["loop"]["threads"] == 1
    # one resume policy for every task: a result-changing option is refused, naming it ...
    out = fails("train", data, "-o", tmp_path / "run", "--resume", "--lr", 0.05, *base)
    assert "cannot change lr" in out
    # ... a resume-free one (threads, device) is not
    run("train", data, "-o", tmp_path / "run", "--resume", "--threads", 2, "--num-workers", 0, "-q")
    model = tmp_path / "run" / "model.pt"
    assert model.is_file()
    run("infer", model, *infer_inputs, "-o", tmp_path / "out", "--threads", 1, "-q")
    assert any((tmp_path / "out").iterdir())


def test_loop_options_are_declared_once():
    """No task's Options redeclares a loop field (each flat YAML key has one home)."""
    import dataclasses

    from geodefect.training.config import LoopConfig

    loop = {f.name for f in dataclasses.fields(LoopConfig)}
    for name, task in TASKS.items():
        clash = loop & {f.name for f in dataclasses.fields(task.Options)}
        assert not clash, f"{name} redeclares loop fields {clash}"


def test_a_new_segmentation_task_needs_no_edit_to_cli_or_workflows(tmp_path):
    from geodefect.testing.cracks import make_crack_dataset

    register_task(SegmentTask("pothole_segment", default_model="crack_deeplabv3plus", defect_class="pothole",
                              option_defaults={"loss": "bce_dice"}))
    try:
        d = make_crack_dataset(tmp_path / "potholes", n_images=4, height_px=48, width_px=48, seed=3)
        run("chip", d.images, "--masks", d.masks, "--task", "pothole_segment", "--size-px", 32, "--val-fraction", 0.5,
            "-o", tmp_path / "chips", "-q")
        assert '"pothole"' in (tmp_path / "chips" / "meta.json").read_text()
        run("train", tmp_path / "chips", "-o", tmp_path / "run", "--encoder", "resnet18", "--epochs", 1,
            "--steps-per-epoch", 2, "--batch-size", 2, "--device", "cpu", "-q")
        saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
        assert saved["task"]["loss"] == "bce_dice" and saved["task"]["model"] == "crack_deeplabv3plus"
        run("infer", tmp_path / "run" / "model.pt", d.images, "-o", tmp_path / "out", "-q")
        assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == 4
    finally:
        unregister_task("pothole_segment")


def test_unknown_task_lists_the_known_ones(tmp_path):
    from geodefect.errors import InputError
    from geodefect.tasks import get_task

    with pytest.raises(InputError, match="known tasks: .*crack_classify.*roads"):
        get_task("potholes")
