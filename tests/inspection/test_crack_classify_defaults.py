"""crack_classify defaults: windows that give both classes, balanced batches (issue 18)."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from geodefect.tasks import get_task
from geodefect.training.config import resolve_train_config
from geodefect.workflows.chip import chip


def _write(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


def test_default_chips_are_128px_windows_of_both_classes(tmp_path):
    # one 256 x 384 photo with a crack in its top-left 128-px window only: 6 windows, 1 crack
    image = np.full((256, 384, 3), 120, np.uint8)
    mask = np.zeros((256, 384), np.uint8)
    mask[40:90, 60] = 255
    _write(tmp_path / "images", "a.png", image)
    _write(tmp_path / "masks", "a.png", mask)
    _write(tmp_path / "images", "b.png", image)
    _write(tmp_path / "masks", "b.png", mask)
    meta = chip(tmp_path / "images", tmp_path / "cls", masks=tmp_path / "masks",
                overrides={"task": "crack_classify", "input_px": 32})
    with (tmp_path / "cls" / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert meta["n_chips"] == 12 and meta["n_positive"] == 2
    assert meta["windows"]["size_px"] == 128  # as cut: stage 1 slides the same windows (recipe window_px)
    from geodefect.tasks import get_task

    assert get_task("crack_classify").extra_recipe(meta) == {"input_px": 32, "window_px": 128}
    assert {(int(r["height"]), int(r["width"])) for r in rows} == {(128, 128)}
    crack = {(r["source"], int(r["row_off"]), int(r["col_off"])) for r in rows if r["label"] == "1"}
    assert crack == {("a", 0, 0), ("b", 0, 0)}


def test_crack_classify_trains_on_balanced_batches_by_default():
    task = get_task("crack_classify")
    cfg = resolve_train_config(task.Options, task.loop_defaults, None, {})
    assert task.options_for_run(cfg.task).defect_oversample == 0.5
    cfg = resolve_train_config(task.Options, task.loop_defaults, None, {"defect_oversample": 0})
    assert task.options_for_run(cfg.task).defect_oversample == 0
