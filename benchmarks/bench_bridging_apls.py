"""Does gap bridging help? APLS of vectorised, degraded SpaceNet truth, with and without it.

The SpaceNet Vegas tile's truth (../shared/data/spacenet_vegas_rgb) is buffered by 3 m,
blurred, cut by 25 random gaps (15-60 px squares scaled by 0.2), blurred and noised into a
probability map; an orientation map (20° bins) is made from the truth segments. Each variant
vectorises the same maps and is scored with APLS against the truth; means over seeds.

The orientation here comes from the truth, so the "orientation" row is an upper bound on what
a model's predicted orientation can add.

    .venv/bin/python benchmarks/bench_bridging_apls.py [--seeds 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spacenet_vegas_rgb"
BIN_DEG = 20


def load_truth():
    import geopandas as gpd
    import rasterio

    with rasterio.open(DATA / "RGB-PanSharpen_AOI_2_Vegas_img0.tif") as ds:
        transform, crs, shape = ds.transform, ds.crs, ds.shape
    lines = gpd.read_file(DATA / "AOI_2_Vegas_img0_roads.geojson").explode(ignore_index=True)
    return lines, transform, crs, shape


def truth_maps(lines, transform, crs, shape, utm):
    """(road mask 0/1 float, orientation probabilities (1 + 360/BIN_DEG, H, W))."""
    import geopandas as gpd
    import shapely
    from rasterio.features import rasterize
    from scipy import ndimage

    mask = rasterize([(g, 1) for g in lines.to_crs(utm).buffer(3).to_crs(crs)], out_shape=shape,
                     transform=transform, dtype="uint8").astype(np.float32)
    bins = np.zeros(shape, np.uint8)
    inv = ~transform
    for geom in lines.geometry:
        coords = np.asarray(geom.coords)
        for a, b in zip(coords[:-1], coords[1:], strict=True):
            (c0, r0), (c1, r1) = inv * tuple(a), inv * tuple(b)
            theta = np.degrees(np.arctan2(-(r1 - r0), c1 - c0)) % 360
            seg = gpd.GeoSeries([shapely.LineString([a, b])], crs=lines.crs).to_crs(utm).buffer(3).to_crs(crs)
            bins[rasterize([(seg.iloc[0], 1)], out_shape=shape, transform=transform, dtype="uint8").astype(bool)] = (
                int(theta // BIN_DEG) + 1
            )
    orientation = np.stack([ndimage.gaussian_filter((bins == k).astype(np.float32), 1.5) for k in range(360 // BIN_DEG + 1)])
    return mask, orientation


def degrade(mask: np.ndarray, seed: int) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    prob = ndimage.gaussian_filter(mask, 2)
    rows, cols = np.nonzero(mask > 0)
    for i in rng.choice(len(rows), 25, replace=False):
        s = int(rng.integers(15, 60))
        prob[max(rows[i] - s // 2, 0) : rows[i] + s // 2, max(cols[i] - s // 2, 0) : cols[i] + s // 2] *= 0.2
    prob = ndimage.gaussian_filter(prob + rng.normal(0, 0.12, prob.shape), 1)
    return np.clip(prob, 0, 1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs the SpaceNet sample in {DATA}")

    from geodefect.evaluation.apls import apls, lines_to_graph
    from geodefect.graph.vectorize import VectorizeParams, vectorize_road_probability

    lines, transform, crs, shape = load_truth()
    utm = lines.estimate_utm_crs()
    mask, orientation = truth_maps(lines, transform, crs, shape, utm)
    truth_graph = lines_to_graph(list(lines.to_crs(utm).geometry))
    off = {"bridge_gap_m": 0.01, "bridge_collinear_gap_m": 0.01, "bridge_to_edge_gap_m": 0.0}
    variants = {
        "no bridging": {"params": VectorizeParams(**off)},
        "end-to-end, tangent": {"params": VectorizeParams(bridge_to_edge_gap_m=0.0)},
        "end-to-end + end-to-road, tangent": {},
        "end-to-end + end-to-road, orientation": {"orientation": orientation, "bin_deg": BIN_DEG},
    }
    scores: dict[str, list[float]] = {name: [] for name in variants}
    for seed in range(args.seeds):
        prob = degrade(mask, seed)
        for name, kwargs in variants.items():
            roads, _ = vectorize_road_probability(prob, transform, crs=crs, **kwargs).to_geodataframes()
            pred = lines_to_graph(list(roads.to_crs(utm).geometry)) if len(roads) else lines_to_graph([])
            scores[name].append(apls(truth_graph, pred)["apls"])
    print(f"{'variant':<40} {'APLS mean':>9}  per seed")
    for name, values in scores.items():
        print(f"{name:<40} {np.mean(values):9.4f}  {' '.join(f'{v:.3f}' for v in values)}")


if __name__ == "__main__":
    main()
