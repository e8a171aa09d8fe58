"""Two-stage crack pipeline on real images: stage-1 accuracy and time against segmenting everything.

1. ``build``: a test folder (``images/`` + ``masks/``) of the CrackForest photos that the chips put
   in the validation split (every one has a crack) plus crack-free windows of ``--crop-px`` (128)
   cut from the other crack domains (no mask pixel within ``--margin-px`` = 8 of the window; one
   per source image, at most ``--per-domain`` per domain): stage 1 has something to skip, out of
   its training domain.
2. ``run``: ``geodefect infer SEG images`` (segment everything) and ``geodefect infer SEG images
   --classifier CLS`` (two stages, the classifier's stored threshold unless ``--threshold``), in
   this order after one warm-up image, in one process with ``--threads``; then stage-1 accuracy
   against "has a crack" (any mask pixel), pixel IoU/F1 of both outputs (``geodefect evaluate``'s
   scorer) and the time ratio two-stage / segment-all. Writes ``OUT/bench.json``.

Usage::

    python benchmarks/bench_two_stage.py build --val-chips CHIPS -o TEST \\
        ../shared/data/crackforest crack500=../shared/data/crack_domains/crack500 ...
    python benchmarks/bench_two_stage.py run --segmenter SEG.pt --classifier CLS.pt --test TEST -o OUT --threads 1
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_dilation


def _mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")) > 127


def _first_free_window(mask: np.ndarray, size: int, margin: int, step: int = 16):
    near = np.pad(binary_dilation(mask, iterations=margin).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = mask.shape
    for r in range(0, h - size + 1, step):
        for c in range(0, w - size + 1, step):
            if near[r + size, c + size] - near[r, c + size] - near[r + size, c] + near[r, c] == 0:
                return r, c
    return None


def build(args) -> None:
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; choose another -o")
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    with (Path(args.val_chips) / "index.csv").open() as fh:
        val = sorted({r["source"] for r in csv.DictReader(fh) if r["split"] == "val"})
    cf = Path(args.crackforest)
    for stem in val:
        Image.open(cf / "images" / f"{stem}.jpg").save(out / "images" / f"crackforest_{stem}.png")
        Image.open(cf / "masks" / f"{stem}.png").convert("L").save(out / "masks" / f"crackforest_{stem}.png")
    counts = {"crackforest (val photos, crack)": len(val)}
    for spec in args.domains:
        name, folder = spec.split("=", 1)
        n = 0
        for img in sorted((Path(folder) / "images").iterdir()):
            if n >= args.per_domain:
                break
            mask = _mask(next((Path(folder) / "masks").glob(img.stem + ".*")))
            rc = _first_free_window(mask, args.crop_px, args.margin_px)
            if rc is None:
                continue
            r, c = rc
            crop = np.asarray(Image.open(img).convert("RGB"))[r : r + args.crop_px, c : c + args.crop_px]
            Image.fromarray(crop).save(out / "images" / f"{name}_{img.stem}_free.png")
            Image.fromarray(np.zeros(crop.shape[:2], np.uint8)).save(out / "masks" / f"{name}_{img.stem}_free.png")
            n += 1
        counts[f"{name} (crack-free {args.crop_px}-px windows)"] = n
    (out / "README.json").write_text(json.dumps({"counts": counts, "args": vars(args)}, indent=2))
    print(json.dumps(counts, indent=2))


def _timed_infer(seg, images, out, **overrides) -> tuple[float, dict]:
    from geodefect.workflows.infer import infer

    t0 = time.perf_counter()
    summary = infer(seg, [images], out, overrides=overrides, overwrite=True)
    return time.perf_counter() - t0, summary.data


def run(args) -> None:
    from geodefect.evaluation.inspection_eval import evaluate_masks
    from geodefect.models.checkpoint import read_recipe

    test, out = Path(args.test), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = {"threads": args.threads, "device": "cpu"}
    first = sorted((test / "images").iterdir())[0]
    _timed_infer(args.segmenter, first, out / "warmup", classifier=args.classifier, **common)
    t_all, d_all = _timed_infer(args.segmenter, test / "images", out / "segment_all", **common)
    two = {"classifier": args.classifier, **common, **({"threshold": args.threshold} if args.threshold is not None else {})}
    t_two, d_two = _timed_infer(args.segmenter, test / "images", out / "two_stage", **two)
    with (out / "two_stage" / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    truth = {p.stem: int(_mask(p).any()) for p in (test / "masks").iterdir()}
    pred = np.array([int(r["flagged"]) for r in rows])
    true = np.array([truth[Path(r["image"]).stem] for r in rows])
    tp, fp = int((pred & true).sum()), int((pred & (1 - true)).sum())
    fn, tn = int(((1 - pred) & true).sum()), int(((1 - pred) & (1 - true)).sum())
    result = {
        "n_images": len(rows), "n_crack": int(true.sum()), "stage1_threshold": d_two["stage1_threshold"],
        "classifier_threshold_rule": read_recipe(args.classifier).get("threshold_rule"),
        "stage1": {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "accuracy": (tp + tn) / len(rows),
                   "recall": tp / max(tp + fn, 1), "specificity": tn / max(tn + fp, 1), "n_flagged": int(pred.sum())},
        "seconds": {"segment_all": round(t_all, 2), "two_stage": round(t_two, 2)},
        "time_ratio_two_stage_over_all": round(t_two / t_all, 3),
        "pixels": {name: {k: v for k, v in evaluate_masks(out / name, test / "masks").items() if k != "per_image"}
                   for name in ("segment_all", "two_stage")},
        "threads": args.threads,
    }
    (out / "bench.json").write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps({k: result[k] for k in ("n_images", "n_crack", "stage1_threshold", "stage1", "seconds",
                                             "time_ratio_two_stage_over_all")}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("crackforest")
    b.add_argument("domains", nargs="*", help="NAME=FOLDER of other domains (images/ + masks/)")
    b.add_argument("--val-chips", required=True, help="a chip folder of CrackForest (its index.csv gives the val photos)")
    b.add_argument("-o", "--out", required=True)
    b.add_argument("--crop-px", type=int, default=128)
    b.add_argument("--margin-px", type=int, default=8)
    b.add_argument("--per-domain", type=int, default=12)
    r = sub.add_parser("run")
    r.add_argument("--segmenter", required=True)
    r.add_argument("--classifier", required=True)
    r.add_argument("--test", required=True)
    r.add_argument("-o", "--out", required=True)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--threshold", type=float, default=None)
    args = ap.parse_args()
    build(args) if args.cmd == "build" else run(args)


if __name__ == "__main__":
    main()
