"""Leave-one-domain-out evaluation (``geodefect evaluate --leave-one-domain-out``).

For every domain d: train on all other domains (a random ``val_fraction`` of their crops selects
the best epoch), then test ``best.pt`` on d, which the model never saw. The result is the
layout of Trinh et al.'s Table II (precision, recall, F1 per unseen domain, macro over classes)
and Table III (their averages over domains), written as ``lodo.csv``, ``lodo.json`` and
``lodo.md`` in ``OUT``; each fold's training run stays in ``OUT/runs/<domain>/``.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from geodefect.errors import InputError

log = logging.getLogger(__name__)

SCORES = ("precision", "recall", "f1")


def leave_one_domain_out(data_dir, out_dir, *, config_file=None, overrides: dict | None = None, overwrite: bool = False) -> dict:
    """Run the protocol; returns ``{"rows": [...], "average": {...}, "markdown": str, "out_dir": str}``."""
    from geodefect.io.atomic import check_output_free, write_text_atomic
    from geodefect.models.checkpoint import load_package
    from geodefect.tasks import lodo_task
    from geodefect.tasks.base import TaskData, fit_once
    from geodefect.tasks.damage import (
        load_domain_crops,
        predict_crops,
        prepare_crops,
        resolve_data,
        score_crops,
        split_train_val,
    )
    from geodefect.training.config import resolve_train_config, save_train_config
    from geodefect.training.resume import prepare_run_dir

    task = lodo_task()
    cfg = resolve_train_config(task.Options, task.loop_defaults, config_file, overrides)
    root, opts = resolve_data(data_dir, cfg.task, task=task.name)
    out = Path(out_dir)
    check_output_free(out, overwrite=overwrite)
    crops = load_domain_crops(root, opts, seed=cfg.loop.seed)
    if len(crops.domain_names) < 2:
        raise InputError(
            f"leave-one-domain-out needs at least 2 domains, got {crops.domain_names} in {str(root)!r}"
        )
    task.model(cfg, {}, TaskData([], [], {"crops": crops}), pretrained=True)  # refused weights: nothing written
    out.mkdir(parents=True, exist_ok=True)
    save_train_config(cfg, out / "config.yaml")
    rows = []
    for di, name in enumerate(crops.domain_names):
        log.info("fold %d/%d: unseen domain %s", di + 1, len(crops.domain_names), name)
        pool = crops.subset(crops.domains != di)
        test = crops.subset(crops.domains == di)
        val = split_train_val(len(pool), val_fraction=opts.val_fraction, seed=cfg.loop.seed + di)
        run_dir = out / "runs" / name
        prepare_run_dir(run_dir, resume=False, overwrite=True)
        fit_once(task, root, run_dir, cfg, {}, prepare_crops(pool.subset(~val), pool.subset(val), cfg), resume=False)
        model, recipe = load_package(run_dir / "best.pt")
        scores = score_crops(predict_crops(model, recipe, test), test, crops.classes)
        rows.append({"domain": name, "n_test": len(test), "n_train": int((~val).sum()), **scores})
    average = {k: float(np.mean([r[k] for r in rows])) for k in (*SCORES, "accuracy")}
    text = format_markdown(rows, average, backbone=opts.backbone, losses=opts.losses, classes=crops.classes)
    write_text_atomic(out / "lodo.md", text)
    write_text_atomic(out / "lodo.json", json.dumps({"backbone": opts.backbone, "losses": opts.losses,
                                                     "classes": crops.classes, "rows": rows, "average": average}, indent=2))
    _write_csv(out / "lodo.csv", rows, average, crops.classes)
    return {"rows": rows, "average": average, "markdown": text, "out_dir": str(out)}


def format_markdown(rows: list[dict], average: dict, *, backbone: str, losses: str, classes: list[str]) -> str:
    """Table II (per unseen domain) and Table III (averages) as Markdown."""
    lines = [
        f"# Leave-one-domain-out: {backbone}, losses {losses}",
        "",
        f"Macro precision / recall / F1 over the classes {', '.join(classes)} on each unseen domain.",
        "",
        "| unseen domain | n test | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['domain']} | {r['n_test']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |" for r in rows]
    lines += [
        "",
        "| average over domains | precision | recall | F1 |",
        "|---|---:|---:|---:|",
        f"| {backbone} {losses} | {average['precision']:.3f} | {average['recall']:.3f} | {average['f1']:.3f} |",
        "",
    ]
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict], average: dict, classes: list[str]) -> None:
    from geodefect.io.atomic import atomic_path

    per_class = [f"f1_{c}" for c in classes]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["domain", "n_test", *SCORES, "accuracy", *per_class])
        for r in rows:
            w.writerow([r["domain"], r["n_test"], *(f"{r[k]:.4f}" for k in (*SCORES, "accuracy", *per_class))])
        w.writerow(["average", "", *(f"{average[k]:.4f}" for k in (*SCORES, "accuracy")), *([""] * len(per_class))])
