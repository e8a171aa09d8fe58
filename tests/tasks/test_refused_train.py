"""A refused `geodefect train` / LODO writes and changes nothing (issue 18: config.yaml was left behind)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from geodefect.errors import GeodefectError
from geodefect.testing.cracks import make_crack_dataset
from geodefect.workflows.chip import chip
from geodefect.workflows.train import train


@pytest.fixture()
def crack_chips(tmp_path):
    d = make_crack_dataset(tmp_path / "cracks", n_images=4, height_px=64, width_px=64, seed=0)
    out = tmp_path / "chips"
    chip(d.images, out, masks=d.masks, overrides={"task": "crack_classify", "input_px": 32, "size_px": 32})
    return out


def _old_run(run_dir):
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(b"the previous run")
    (run_dir / "config.yaml").write_text("previous: true\n")
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


@pytest.mark.parametrize("overrides", [{"encoder_weights": "imagenet"}, {"folds": 2, "encoder_weights": "imagenet"}])
def test_refused_model_option_keeps_the_previous_run(crack_chips, tmp_path, overrides):
    run_dir = tmp_path / "run"
    before = _old_run(run_dir)
    with pytest.raises(GeodefectError, match="download"):
        train(crack_chips, run_dir, overrides={"variant": "tiny", **overrides}, overwrite=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_refused_model_option_creates_nothing(crack_chips, tmp_path):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(GeodefectError, match="download"):
        train(crack_chips, empty, overrides={"variant": "tiny", "encoder_weights": "imagenet"})
    assert empty.is_dir() and not any(empty.iterdir())


def _domains(root, rng):
    for domain in ("a", "b"):
        for cls in ("crack", "no_crack"):
            (root / domain / cls).mkdir(parents=True)
            for k in range(3):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / domain / cls / f"{k}.png")


def test_refused_damage_weights_write_nothing(tmp_path):
    from geodefect.tasks.damage_lodo import leave_one_domain_out

    _domains(tmp_path / "d", np.random.default_rng(0))
    with pytest.raises(GeodefectError, match="imagenet"):
        train(tmp_path / "d", tmp_path / "run", overrides={"encoder_weights": "imagenet", "size_px": 16})
    with pytest.raises(GeodefectError, match="imagenet"):
        leave_one_domain_out(tmp_path / "d", tmp_path / "lodo", overrides={"encoder_weights": "imagenet", "size_px": 16})
    assert not (tmp_path / "run").exists() and not (tmp_path / "lodo").exists()
