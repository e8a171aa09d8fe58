"""Pick a road model's threshold for APLS on SpaceNet-3 sample tiles (training or validation tiles).

    python benchmarks/calibrate_road_apls.py MODEL OUT_DIR [--split train|val] [--thresholds 0.3,0.4,0.5]
        [--write OUT.pt] [--infer-option bridge_angle_deg=38 ...]

The pixel-IoU threshold (``calibrate_road_threshold.py``) is not the connectivity one: a lower
threshold closes gaps (APLS's truth -> prediction paths) and adds false roads. This runs what a
user runs -- ``geodefect infer MODEL PAN --pan-sharpen MUL --threshold T`` and ``geodefect evaluate``
of ``roads.gpkg`` -- over every SpaceNet-3 sample tile with roads that is (``--split val``) or is not
(``train``) a validation tile of ``examples/spacenet3_chips.yaml`` (``val_sources``), prints APLS per
city and threshold, and picks
the threshold with the best mean over the three cities' means (each city counts alike: Vegas has
twice the tiles). ``--write`` saves a copy of the package with that ``road_threshold``.
The model has memorised its training tiles, where low-probability pixels are mostly true roads:
there every lower threshold looks better; the validation tiles are the honest choice (they are
then no longer an unbiased estimate: say so when reporting them). OUT_DIR keeps each tile's
outputs per threshold and a rerun reuses them: use one OUT_DIR per model and set of
``--infer-option`` values (more ``geodefect infer`` options, e.g. the vectoriser's, as KEY=VALUE).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CITIES = ("Vegas", "Paris", "Shanghai")


def sample_tiles(shared: Path, split: str) -> list[tuple[str, Path, Path, Path]]:
    """``(city, pan, mul, centerlines)`` of every sample tile with roads in ``split`` (train | val)."""
    val = yaml.safe_load((ROOT / "examples" / "spacenet3_chips.yaml").read_text())["val_sources"]
    tiles = []
    for aoi_dir in sorted((shared / "spacenet3_samples").glob("AOI_*_Roads_Sample")):
        city = aoi_dir.name.split("_")[2]
        for gj in sorted((aoi_dir / "geojson").glob("*.geojson")):
            tile = gj.stem.replace("spacenetroads_", "")  # AOI_2_Vegas_img1454
            is_val = f"{city}_{tile.split('_')[-1]}" in val
            if gj.stat().st_size == 0 or is_val != (split == "val"):
                continue
            tiles.append((city, aoi_dir / "PAN" / f"PAN_{tile}.tif", aoi_dir / "MUL" / f"MUL_{tile}.tif", gj))
    return tiles


def infer_options(pairs: list[str]) -> list[str]:
    """``["--bridge-angle-deg", "38", ...]`` from ``["bridge_angle_deg=38", ...]``."""
    args = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--infer-option takes KEY=VALUE (e.g. bridge_angle_deg=38), got {pair!r}")
        args += ["--" + key.replace("_", "-"), value]
    return args


def tile_apls(gd: str, model: str, tile, out: Path, threshold: float, extra: list[str] = ()) -> float:
    """APLS of ``geodefect infer --threshold`` (plus ``extra`` options) on one tile (cached in ``out``)."""
    _, pan, mul, truth = tile
    result = out / "graph.json"
    if not result.is_file():
        run = [gd, "infer", model, str(pan), "--pan-sharpen", str(mul), "--threshold", str(threshold),
               "-o", str(out), "--overwrite", "-q", "--threads", "1", *extra]
        evaluate = [gd, "evaluate", "--pred", str(out / "roads.gpkg"), "--truth", str(truth), "--json", str(result)]
        for cmd in (run, evaluate):
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return float(json.loads(result.read_text())["apls"]["apls"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--split", choices=("train", "val"), default="val")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5")
    ap.add_argument("--write", type=Path)
    ap.add_argument("--infer-option", action="append", default=[], metavar="KEY=VALUE",
                    help="another geodefect infer option, e.g. bridge_angle_deg=38 (repeatable)")
    args = ap.parse_args()
    extra = infer_options(args.infer_option)
    shared = Path(os.environ.get("GEODEFECT_SHARED", ROOT.parent / "shared" / "data"))
    gd = os.environ.get("GEODEFECT", "geodefect")
    tiles = sample_tiles(shared, args.split)
    table = {}
    for t in (float(v) for v in args.thresholds.split(",")):
        per_city = {c: [] for c in CITIES}
        for tile in tiles:
            per_city[tile[0]].append(tile_apls(gd, args.model, tile, args.out_dir / f"t{t:.2f}" / tile[1].stem, t, extra))
        means = {c: sum(v) / len(v) for c, v in per_city.items() if v}
        table[t] = (sum(means.values()) / len(means), means)
        print(f"threshold {t:.2f}: mean {table[t][0]:.3f}  " + "  ".join(f"{c} {v:.3f}" for c, v in means.items()),
              flush=True)
    best = max(table, key=lambda k: table[k][0])
    print(f"best threshold {best:.2f} ({len(tiles)} {args.split} tiles)")
    if args.write:
        from geodefect.models.checkpoint import load_package, save_package

        model, recipe = load_package(args.model)
        recipe["road_threshold"] = best
        recipe["road_threshold_source"] = (f"best mean APLS per city on the {len(tiles)} SpaceNet-3 {args.split} tiles "
                                           f"({table[best][0]:.3f}; benchmarks/calibrate_road_apls.py)")
        save_package(args.write, model=model, recipe=recipe)
        print(f"wrote {args.write} with road_threshold {best}")


if __name__ == "__main__":
    main()
