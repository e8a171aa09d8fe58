"""Cut balanced crack / no-crack crops from real crack domains, for ``damage_classify`` LODO.

Each domain is an ``images/`` + ``masks/`` folder (same stems; masks binarised with > 127, also the
JPEG ones). Windows of ``--size-px`` (64) at a ``--stride-px`` (32) grid, native resolution (no
resize):

* ``crack``: at least ``--min-crack-px`` (30) mask pixels in the window;
* ``no_crack``: no mask pixel within ``--margin-px`` (4) of the window (the mask dilated by the
  margin), so a crack just outside the window or a 1-px annotation miss does not label it;
* everything in between is dropped.

Per domain, ``--per-class`` (200) crops of each class are drawn (fewer if the domain has fewer:
then both classes get the smaller count, so every domain is balanced), round robin over source
photos in a seeded order so that every photo contributes before any gives a second crop. The
source photo is the image stem up to its last ``-`` (CRACK500 ``20160222_080933-101``,
AigleRN ``AIGLE_RN_C18a-11``, ShadowCrack ``test_10-3``; CrackForest ``001`` is its own photo).

Output (the generic ``DOMAIN/CLASS/*.png`` layout ``geodefect train`` / ``evaluate
--leave-one-domain-out`` read)::

    OUT/<domain>/crack/<stem>_r<row>_c<col>.png
    OUT/<domain>/no_crack/<stem>_r<row>_c<col>.png
    OUT/crops.csv   domain, class, file, image, photo, row_px, col_px, crack_px

Usage::

    python benchmarks/cut_crack_domain_crops.py -o /work/runs/cls/crack_domains_64 \\
        crackforest=../shared/data/crackforest crack500=../shared/data/crack_domains/crack500 \\
        aiglern_trimm=../shared/data/crack_domains/aiglern_trimm shadowcrack=../shared/data/crack_domains/shadowcrack
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_dilation

MASK_THRESHOLD = 127


def photo_of(stem: str) -> str:
    """Source photo of a crop's stem: the part before the last ``-`` (the stem if there is none)."""
    return stem.rsplit("-", 1)[0] if "-" in stem else stem


def read_pair(image_path: Path, masks_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3) uint8`` image and ``(H, W) bool`` crack mask (> 127) of one stem."""
    masks = [p for p in masks_dir.glob(image_path.stem + ".*")]
    if not masks:
        raise SystemExit(f"no mask for {image_path} in {masks_dir}")
    image = np.asarray(Image.open(image_path).convert("RGB"))
    mask = np.asarray(Image.open(masks[0]).convert("L")) > MASK_THRESHOLD
    if mask.shape != image.shape[:2]:
        raise SystemExit(f"mask {masks[0]} is {mask.shape}, image {image.shape[:2]}")
    return image, mask


def candidate_windows(mask: np.ndarray, args) -> dict[str, list[tuple[int, int, int]]]:
    """``{"crack": [(row, col, crack_px)], "no_crack": [...]}`` of one image's window grid."""
    near = binary_dilation(mask, iterations=args.margin_px) if args.margin_px else mask
    out: dict[str, list] = {"crack": [], "no_crack": []}
    h, w = mask.shape
    s = args.size_px
    for r in range(0, h - s + 1, args.stride_px):
        for c in range(0, w - s + 1, args.stride_px):
            n = int(mask[r : r + s, c : c + s].sum())
            if n >= args.min_crack_px:
                out["crack"].append((r, c, n))
            elif not near[r : r + s, c : c + s].any():
                out["no_crack"].append((r, c, 0))
    return out


def round_robin(per_photo: dict[str, list], n: int, rng: np.random.Generator) -> list:
    """Up to ``n`` items, one per photo per round (photos and their items in a seeded order)."""
    queues = [list(rng.permutation(len(v))) for v in per_photo.values()]
    items = list(per_photo.values())
    order = rng.permutation(len(items))
    chosen: list = []
    while len(chosen) < n and any(queues):
        for k in order:
            if queues[k] and len(chosen) < n:
                chosen.append(items[k][queues[k].pop()])
    return chosen


def cut_domain(name: str, root: Path, out: Path, args, writer) -> dict[str, int]:
    rng = np.random.default_rng(args.seed)
    pools: dict[str, dict[str, list]] = {"crack": defaultdict(list), "no_crack": defaultdict(list)}
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for path in images:
        _, mask = read_pair(path, root / "masks")
        for cls, wins in candidate_windows(mask, args).items():
            pools[cls][photo_of(path.stem)] += [(path, r, c, n) for r, c, n in wins]
    n = min(args.per_class, *(sum(map(len, p.values())) for p in pools.values()))
    counts = {}
    for cls, per_photo in pools.items():
        (out / name / cls).mkdir(parents=True, exist_ok=True)
        chosen = round_robin(per_photo, n, rng)
        for path, r, c, npx in chosen:
            image, _ = read_pair(path, root / "masks")
            fname = f"{path.stem}_r{r}_c{c}.png"
            Image.fromarray(image[r : r + args.size_px, c : c + args.size_px]).save(out / name / cls / fname)
            writer.writerow([name, cls, f"{name}/{cls}/{fname}", path.name, photo_of(path.stem), r, c, npx])
        counts[cls] = len(chosen)
    counts["photos"] = len({photo_of(p.stem) for p in images})
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("domains", nargs="+", help="NAME=FOLDER (FOLDER holds images/ and masks/)")
    ap.add_argument("-o", "--out", required=True, type=Path)
    ap.add_argument("--size-px", type=int, default=64)
    ap.add_argument("--stride-px", type=int, default=32)
    ap.add_argument("--min-crack-px", type=int, default=30)
    ap.add_argument("--margin-px", type=int, default=4)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; remove it or choose another -o")
    args.out.mkdir(parents=True)
    with (args.out / "crops.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["domain", "class", "file", "image", "photo", "row_px", "col_px", "crack_px"])
        for spec in args.domains:
            name, folder = spec.split("=", 1)
            counts = cut_domain(name, Path(folder), args.out, args, writer)
            print(f"{name}: {counts}")


if __name__ == "__main__":
    main()
