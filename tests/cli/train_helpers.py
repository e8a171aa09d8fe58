"""What the `geodefect train` CLI tests share: small road chip folders."""

from __future__ import annotations

from pathlib import Path


def make_road_chips(root: Path, *, scene_px: int, seed: int, **overrides) -> Path:
    """A chip folder of 32-px road chips of a synthetic scene (every window kept, 30 % validation)."""
    from geodefect.testing.scenes import make_road_scene
    from geodefect.workflows.chip import chip

    scene = make_road_scene(root / "scene", size_px=scene_px, seed=seed)
    chip([scene.image], root / "chips", centerlines=scene.centerlines,
         overrides={"size_px": 32, "stride_px": 32, "keep_empty": 1.0, "val_fraction": 0.3, **overrides})
    return root / "chips"
