"""Per-city table of benchmarks/eval_spacenet3_val.sh output: pixel IoU, relaxed F1 (road_mask.tif)
and APLS (roads.gpkg) on the SpaceNet-3 validation tiles.

    python benchmarks/summarise_spacenet3_val.py OUT_DIR [OUT_DIR ...]   (one row per city and run)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CITIES = {"Vegas": "AOI_2_Vegas", "Paris": "AOI_3_Paris", "Shanghai": "AOI_4_Shanghai"}


def city_rows(out_dir: Path) -> dict[str, dict[str, float]]:
    """Per city: mean over its validation tiles of pixel IoU, relaxed F1 and APLS (plus tile count)."""
    rows = {}
    for city, aoi in CITIES.items():
        tiles = sorted(p for p in out_dir.glob(f"{aoi}_img*") if (p / "graph.json").is_file())
        if not tiles:
            continue
        mask = [json.loads((t / "mask.json").read_text()) for t in tiles]
        graph = [json.loads((t / "graph.json").read_text()) for t in tiles]
        rows[city] = {
            "tiles": len(tiles),
            "pixel_iou": sum(m["pixel"]["iou"] for m in mask) / len(tiles),
            "relaxed_f1": sum(m["relaxed"]["f1"] for m in mask) / len(tiles),
            "apls": sum(g["apls"]["apls"] for g in graph) / len(tiles),
        }
    return rows


def main(argv: list[str]) -> None:
    print("| run | city | tiles | pixel IoU | relaxed F1 | APLS |")
    print("|---|---|---|---|---|---|")
    for arg in argv:
        for city, r in city_rows(Path(arg)).items():
            print(f"| {Path(arg).name} | {city} | {r['tiles']} | {r['pixel_iou']:.3f} | {r['relaxed_f1']:.3f} | {r['apls']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
