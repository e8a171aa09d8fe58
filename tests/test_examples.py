"""The gallery examples run (so they never rot) and show what they claim."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def run_example(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODEFECT_EXAMPLES_OUT", str(tmp_path))

    def run(name: str) -> dict:
        return runpy.run_path(str(EXAMPLES / name), run_name="__main__")

    return run


def test_tiling_grid_covers_every_pixel_and_filters_by_aoi(run_example, tmp_path):
    g = run_example("plot_tiling_grid.py")
    assert g["coverage"].min() >= 1
    assert 0 < len(g["inside"]) < len(g["windows"])
    assert (tmp_path / "tiling_grid.png").stat().st_size > 10_000


def test_vectorize_mask_recovers_the_road_length(run_example, tmp_path):
    g = run_example("plot_vectorize_mask.py")
    assert g["network"].n_edges > 0
    # skeleton length within 20% of the true centerline length (junction geometry differs)
    assert g["network"].total_length_m / 1000 == pytest.approx(g["truth_km"], rel=0.2)
    assert (tmp_path / "vectorize_mask.png").exists()


def test_hann_blend_removes_the_seams_that_mean_shows(run_example):
    g = run_example("plot_sliding_blend.py")
    assert g["results"]["hann"] < 0.5 * g["results"]["mean"]
