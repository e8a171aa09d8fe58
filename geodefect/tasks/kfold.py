"""K-fold cross-validation by source image, for any task whose data are index rows with a ``source``.

``RUN_DIR/fold_<k>/`` holds one ordinary run per fold (resumable on its own); then
``folds.csv`` and ``cv_report.md`` (per-fold and mean +- std of the task's fold metrics and
time per step: Kim et al.'s Tables 5-7 layout). Normalisation uses the chips' train statistics
for every fold. A finished fold leaves ``fold.json`` and is skipped on ``--resume``.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from geodefect.errors import ConfigError
from geodefect.summary import Summary

log = logging.getLogger(__name__)


def train_kfold(task, data_dir: Path, run: Path, cfg, meta: dict, rows: list[dict], *, resume: bool = False) -> Summary:
    """Run ``cfg.task.folds`` folds of ``task`` (see module docstring); returns the CV summary."""
    import numpy as np

    from geodefect.tasks.base import fit_once

    keys = task.fold_keys
    records = []
    for k, val_sources in enumerate(fold_groups(rows, folds=cfg.task.folds, seed=cfg.loop.seed), start=1):
        fold_dir = run / f"fold_{k}"
        done = fold_dir / "fold.json"
        if resume and done.is_file():
            records.append(json.loads(done.read_text()))
            continue
        fold_dir.mkdir(exist_ok=True)
        val_set = set(val_sources)
        train_rows = [r for r in rows if r["source"] not in val_set]
        val_rows = [r for r in rows if r["source"] in val_set]
        data = task.datasets(data_dir, cfg, meta, train_rows, val_rows, rows)
        result, timer = fit_once(task, data_dir, fold_dir, cfg, meta, data,
                                 resume=resume and (fold_dir / "last.pt").is_file())
        record = {"fold": k, "n_train": len(train_rows), "n_val": len(val_rows), "best_epoch": result.best_epoch,
                  **{key: float(result.best_metrics.get(key, float("nan"))) for key in keys},
                  "time_per_step_s": timer.mean_s}
        done.write_text(json.dumps(record))
        records.append(record)
        log.info("fold %d/%d: %s", k, cfg.task.folds, {key: round(record[key], 4) for key in keys})
    mean = {key: float(np.mean([r[key] for r in records])) for key in (*keys, "time_per_step_s")}
    std = {key: float(np.std([r[key] for r in records])) for key in (*keys, "time_per_step_s")}
    write_fold_reports(run, records, mean, std, keys)
    data = {"folds": records, "mean": mean, "std": std, "config": cfg.to_dict()}
    (run / "summary.json").write_text(json.dumps({"task": task.name, **data}, indent=2))
    return Summary("train", task.name, [(run / "cv_report.md").read_text().rstrip()], data)


def write_fold_reports(run: Path, records, mean, std, keys) -> None:
    columns = ["fold", "n_train", "n_val", "best_epoch", *keys, "time_per_step_s"]
    with (run / "folds.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        writer.writerow({"fold": "mean", **mean})
        writer.writerow({"fold": "std", **std})
    head = "| fold | " + " | ".join(k.upper() if k in ("iou", "f1") else k for k in keys) + " | time/step (s) |"
    lines = [head, "|" + "---|" * (len(keys) + 2)]
    for r in records:
        lines.append(f"| {r['fold']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {r['time_per_step_s']:.3f} |")
    lines.append("| **mean** | " + " | ".join(f"**{mean[k]:.3f}** ± {std[k]:.3f}" for k in keys)
                 + f" | {mean['time_per_step_s']:.3f} |")
    (run / "cv_report.md").write_text("\n".join(lines) + "\n")


def fold_groups(rows: list[dict], *, folds: int, seed: int) -> list[list[str]]:
    """Source images split into ``folds`` groups (seeded shuffle, round robin)."""
    import numpy as np

    sources = sorted({r["source"] for r in rows})
    if len(sources) < folds:
        raise ConfigError(f"`folds` {folds} needs at least {folds} source images, the chips come from {len(sources)}")
    order = np.random.default_rng(seed).permutation(len(sources))
    return [[sources[i] for i in order[k::folds]] for k in range(folds)]
