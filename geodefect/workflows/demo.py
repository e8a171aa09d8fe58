"""The built-in demo: the whole road pipeline on synthetic scenes, resumable step by step.

    scene A (train) --chip--> chips --train--> model.pt
    scene B (held out) + paris.geojson AOI --infer--> road_prob.tif, roads.gpkg --evaluate--> IoU, APLS

Training and evaluation use *different* scenes (seeds), so the reported IoU/APLS measure
how the model generalises, not how well it memorised. Every step keeps its finished output:
rerunning ``geodefect demo`` after an interruption continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from geodefect.errors import ConfigError
from geodefect.summary import Summary

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo (``examples/demo.yaml`` holds the ones ``make demo`` uses).

    Attributes:
        train_scene_size_px: side of the training scene (0.3 m pixels).
        test_scene_size_px: side of the held-out scene that inference runs on.
        seed: seed of the training scene; the held-out scene uses ``seed + 1``.
        chip: options of ``geodefect chip`` (RoadChipConfig fields).
        train: options of ``geodefect train`` (RoadTrainConfig fields).
        infer: options of ``geodefect infer`` (RoadInferConfig / VectorizeParams fields).
        evaluate: options of ``geodefect evaluate`` (RoadEvalConfig fields).
    """

    train_scene_size_px: int = 1024
    test_scene_size_px: int = 1024
    seed: int = 0
    chip: dict = dataclasses.field(default_factory=lambda: {"size_px": 128, "stride_px": 96, "buffer_m": 3.5})
    train: dict = dataclasses.field(
        default_factory=lambda: {"model": "road_linknet", "encoder": "resnet18", "epochs": 20, "batch_size": 8,
                                 "lr": 0.002, "seed": 0}
    )
    infer: dict = dataclasses.field(default_factory=dict)
    evaluate: dict = dataclasses.field(default_factory=lambda: {"buffer_m": 3.5})

    def __post_init__(self) -> None:
        for name in ("train_scene_size_px", "test_scene_size_px"):
            if getattr(self, name) < 256:
                raise ConfigError(f"`{name}` must be >= 256 px, got {getattr(self, name)}")


def run_demo(out_dir: str | Path, *, config_file=None, overrides: dict | None = None,
             overwrite: bool = False) -> Summary:
    """Run (or resume) the demo in ``out_dir``; its record is also written to ``summary.json``."""
    from geodefect.config import config_to_dict, resolve_config
    from geodefect.io.atomic import write_text_atomic

    cfg = resolve_config(DemoConfig, config_file)
    cfg = _merge_overrides(cfg, overrides or {})
    out = Path(out_dir)
    if overwrite and out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    train_scene = _step(timings, "scene", _make_scene, out / "scene_train", cfg.train_scene_size_px, cfg.seed)
    test_scene = _step(timings, "scene_test", _make_scene, out / "scene_test", cfg.test_scene_size_px, cfg.seed + 1)
    chips = _step(timings, "chip", _chip, train_scene, out / "chips", cfg.chip)
    model = _step(timings, "train", _train, chips, out / "run", cfg.train)
    infer_dir = _step(timings, "infer", _infer, model, test_scene, out / "infer", cfg.infer)
    result = _step(timings, "evaluate", _evaluate, infer_dir, test_scene, out / "evaluation.json", cfg.evaluate)
    summary = {
        "out_dir": str(out),
        "model": str(model),
        "train_metrics": _train_metrics(model),
        "evaluation": {k: result[k] for k in ("pixel", "relaxed", "apls", "km") if k in result},
        "outputs": {
            "road_prob": str(infer_dir / "road_prob.tif"),
            "roads": str(infer_dir / "roads.gpkg"),
            "image": str(test_scene.image),
            "aoi": str(test_scene.aoi),
        },
        "timings_s": timings,
        "config": config_to_dict(cfg),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return Summary("demo", "roads", format_demo_summary(summary).splitlines(), summary)


def _merge_overrides(cfg: DemoConfig, overrides: dict) -> DemoConfig:
    """Apply overrides; for the per-step dicts (chip, train, ...) merge keys instead of replacing."""
    from geodefect.config import resolve_config

    merged = dataclasses.asdict(cfg)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return resolve_config(DemoConfig, None, merged)


def format_demo_summary(summary: dict) -> str:
    """A short human-readable report of the demo run."""
    ev = summary["evaluation"]
    pix, rel, apls = ev.get("pixel", {}), ev.get("relaxed", {}), ev.get("apls", {})
    o = summary["outputs"]
    total = sum(summary["timings_s"].values())
    return "\n".join([
        f"Demo finished in {total:.0f} s (held-out scene, inside the AOI):",
        f"  pixel IoU {pix.get('iou', float('nan')):.3f}  F1 {pix.get('f1', float('nan')):.3f}  "
        f"relaxed F1 {rel.get('f1', float('nan')):.3f}  APLS {apls.get('apls', float('nan')):.3f}",
        f"  model:       {summary['model']}",
        f"  probability: {o['road_prob']}",
        f"  road graph:  {o['roads']}  (open in QGIS over {o['image']})",
        f"  metrics:     {Path(summary['out_dir']) / 'evaluation.json'}",
    ])


def _train_metrics(model: Path) -> dict:
    from geodefect.models.checkpoint import read_recipe

    return read_recipe(model).get("final_metrics", {})


def _step(timings: dict[str, float], name: str, fn, *args: Any):
    t0 = time.perf_counter()
    log.info("demo: %s", name)
    result = fn(*args)
    timings[name] = round(time.perf_counter() - t0, 2)
    return result


def _make_scene(folder: Path, size_px: int, seed: int):
    """Generate a scene, or reuse the one a previous run finished (marked by ``scene.json``)."""
    from geodefect.io.atomic import write_text_atomic
    from geodefect.testing.scenes import RoadScene, make_road_scene

    marker = folder / "scene.json"
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("size_px") == size_px and saved.get("seed") == seed:
            fields = {f.name for f in dataclasses.fields(RoadScene)}
            kw = {k: v for k, v in saved.items() if k in fields}
            return RoadScene(**{**kw, **{k: Path(kw[k]) for k in ("image", "centerlines", "aoi", "road_mask")},
                                "transform": tuple(kw["transform"])})
        marker.unlink()
    scene = make_road_scene(folder, size_px=size_px, seed=seed)
    record = {**dataclasses.asdict(scene), "seed": seed}
    write_text_atomic(marker, json.dumps(record, default=str, indent=2))
    return scene


def _chip(scene, out: Path, options: dict) -> Path:
    from geodefect.workflows.chip import chip

    chip([scene.image], out, centerlines=scene.centerlines, overrides=dict(options))
    return out


def _train(chips: Path, run: Path, options: dict) -> Path:
    from geodefect.workflows.train import train

    model = run / "model.pt"
    if model.exists():
        return model
    resume = (run / "last.pt").exists()
    summary = train(chips, run, overrides=dict(options), resume=resume, overwrite=not resume)
    return Path(summary["model"])


def _infer(model: Path, scene, out: Path, options: dict) -> Path:
    from geodefect.workflows.infer import infer

    if (out / "run.json").exists():
        return out
    infer(model, [scene.image], out, overrides={"aoi": str(scene.aoi), **options}, overwrite=True)
    return out


def _evaluate(infer_dir: Path, scene, json_out: Path, options: dict) -> dict:
    from geodefect.evaluation.scene import evaluate

    return evaluate(infer_dir / "roads.gpkg", scene.centerlines, aoi=scene.aoi, json_out=json_out,
                    overrides=dict(options), overwrite=True)
