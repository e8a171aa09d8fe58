"""What the `geodefect train` CLI tests share: one torch thread, and small road chip folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and two threads crawl when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_road_chips(root: Path, *, scene_px: int, seed: int, **overrides) -> Path:
    """A chip folder of 32-px road chips of a synthetic scene (every window kept, 30 % validation)."""
    from geodefect.testing.scenes import make_road_scene
    from geodefect.workflows.chip import chip

    scene = make_road_scene(root / "scene", size_px=scene_px, seed=seed)
    chip([scene.image], root / "chips", centerlines=scene.centerlines,
         overrides={"size_px": 32, "stride_px": 32, "keep_empty": 1.0, "val_fraction": 0.3, **overrides})
    return root / "chips"
