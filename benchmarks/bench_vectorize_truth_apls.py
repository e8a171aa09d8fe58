"""What does the vectoriser lose? APLS of SpaceNet-3 truth rasterised, (damaged,) vectorised, per city.

For each tile of ``../shared/data/spacenet3_samples`` with roads (19 of 20), the centerlines are
buffered by 1.75 m per lane (SpaceNet's ``lane_number``, 1-4; a 2-lane road is 7 m wide) on the
tile's PAN grid (0.3 m, EPSG:4326), then

* ``clean``: vectorised as is -- an upper bound that isolates the vectoriser's own losses
  (junctions of wide roads, thinning at crossings, spurs at corners);
* ``damaged``: with what a model's mask shows and an analyst corrects by hand: ragged edges
  (the mask blurred by 1 m plus noise of 1 m grain, thresholded), holes where cars and trees sit on the road (discs 1-2.5 m, ~4 per 100 m),
  blobs on driveways (discs 3-8 m next to the road, ~1.5 per 100 m) and parking lots (8-20 m,
  ~0.3 per 100 m) and a
  few gaps (squares 2-6 m, ~0.5 per 100 m), 3 false-positive discs (2-5 m) per tile; a fixed
  seed per tile;
* ``aoi``: the clean mask cut by an AOI (a disc of 0.4 x the tile width; NaN outside) to count
  the road ends the AOI makes and how many are marked ``kind = boundary``.

Each vectorised network is scored with APLS (``geodefect.evaluation.apls``) against the truth
clipped to the same area, in the tile's UTM zone; the table shows the mean per city and the
artefacts an analyst would fix: ``close_jct`` junction pairs closer than 6 m (an X thinned into
two T), ``dead_ends`` end nodes that are not ``boundary``, and ``cycles`` shorter than 60 m
(rings round holes). ``t2p``/``p2t``: APLS's two directions (truth -> prediction is path
completeness; prediction -> truth weighs every predicted node alike, so many spurious nodes
on well-found roads raise it). ``missed_km``/``extra_km``: length of truth farther than 3 m
from the prediction and of prediction farther than 3 m from the truth (``road_errors``):
length-weighted, so not moved by node counts.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_vectorize_truth_apls.py \
        [--variants clean damaged aoi] [--set junction_merge_m=0 ...] [--tiles Vegas_img1454 ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spacenet3_samples"
HALF_WIDTH_PER_LANE_M = 1.75
#: tolerance of the missed / extra road lengths (evaluation.errors.road_errors)
ERROR_BUFFER_M = 3.0


def iter_tiles():
    """(city, tile id, truth GeoDataFrame, transform, crs, shape) of every tile with roads."""
    import geopandas as gpd
    import rasterio

    for aoi_dir in sorted(DATA.glob("AOI_*_Roads_Sample")):
        city = aoi_dir.name.split("_")[2]
        for gj in sorted((aoi_dir / "geojson").glob("*.geojson")):
            if gj.stat().st_size == 0:
                continue
            tile = gj.stem.replace("spacenetroads_", "")
            with rasterio.open(aoi_dir / "PAN" / f"PAN_{tile}.tif") as ds:
                transform, crs, shape = ds.transform, ds.crs, ds.shape
            lines = gpd.read_file(gj).explode(ignore_index=True)
            lines = lines[~lines.geometry.is_empty & lines.geometry.notna()]
            if len(lines):
                yield city, tile, lines, transform, crs, shape


def truth_mask(lines, transform, crs, shape, utm) -> np.ndarray:
    from rasterio.features import rasterize

    lanes = np.clip(np.nan_to_num(np.asarray(lines.get("lane_number", 2), dtype=float), nan=2.0), 1, 4)
    buffered = lines.to_crs(utm).geometry.buffer(HALF_WIDTH_PER_LANE_M * lanes, cap_style="flat").to_crs(crs)
    return rasterize([(g, 1) for g in buffered], out_shape=shape, transform=transform, dtype="uint8").astype(bool)


def damage(mask: np.ndarray, pixel_m: float, road_km: float, seed: int) -> np.ndarray:
    """Ragged edges, car/tree holes, driveway/parking blobs and gaps (see the module docstring)."""
    from scipy import ndimage
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    out = mask.copy()
    rows, cols = np.nonzero(mask)
    dist_in = ndimage.distance_transform_edt(mask) * pixel_m
    core = np.flatnonzero(dist_in[rows, cols] >= 2.0)
    edge = np.flatnonzero((dist_in[rows, cols] > 0) & (dist_in[rows, cols] <= 1.0))
    for _ in range(int(40 * road_km)):  # holes: cars, trees
        i = rng.choice(core) if core.size else rng.integers(len(rows))
        out[disk((rows[i], cols[i]), rng.uniform(1.0, 2.5) / pixel_m, shape=mask.shape)] = False
    for k in range(int(18 * road_km)):  # blobs next to the road: driveways, parking lots (1 in 6)
        i = rng.choice(edge) if edge.size else rng.integers(len(rows))
        r = rng.uniform(8.0, 20.0) / pixel_m if k % 6 == 5 else rng.uniform(3.0, 8.0) / pixel_m
        angle = rng.uniform(0, 2 * np.pi)
        centre = (rows[i] + 0.8 * r * np.sin(angle), cols[i] + 0.8 * r * np.cos(angle))
        out[disk(centre, r, shape=mask.shape)] = True
    for _ in range(int(5 * road_km)):  # gaps
        i = rng.integers(len(rows))
        s = int(rng.uniform(2.0, 6.0) / pixel_m) // 2
        out[max(rows[i] - s, 0) : rows[i] + s, max(cols[i] - s, 0) : cols[i] + s] = False
    for _ in range(3):  # false positives off the road (roofs, car parks)
        r = rng.uniform(2.0, 5.0) / pixel_m
        out[disk((rng.uniform(0, mask.shape[0]), rng.uniform(0, mask.shape[1])), r, shape=mask.shape)] = True
    noise = ndimage.gaussian_filter(rng.normal(0, 1, mask.shape), 1.0 / pixel_m)
    soft = ndimage.gaussian_filter(out.astype(np.float32), 1.0 / pixel_m)
    band = (soft > 0.02) & (soft < 0.98)  # edges only: the background stays clean
    return np.where(band, soft + 0.3 * noise / noise.std(), soft) >= 0.5


def aoi_disc(shape, transform, crs):
    """A disc of radius 0.4 x the tile width at the centre, in the raster CRS, and its (H, W) mask."""
    import shapely
    from rasterio.features import geometry_mask

    h, w = shape
    cx, cy = transform * (w / 2, h / 2)
    disc = shapely.Point(cx, cy).buffer(0.4 * w * abs(transform.a), 64)
    return disc, geometry_mask([disc], out_shape=shape, transform=transform, invert=True)


def artefacts(network, utm) -> dict[str, int]:
    import networkx as nx
    import shapely

    g = network.graph
    roads, nodes = network.to_geodataframes()
    counts = {"dead_ends": 0, "boundary": 0, "close_junction_pairs": 0, "short_cycles": 0}
    if not len(nodes):
        return counts
    kinds = nodes["kind"].astype(str)
    counts["dead_ends"] = int((kinds == "end").sum())
    counts["boundary"] = int((kinds == "boundary").sum())
    pts = nodes.to_crs(utm).geometry.values
    junction = np.flatnonzero(np.asarray(nodes["degree"]) >= 3)
    if junction.size > 1:
        tree = shapely.STRtree(pts[junction])
        a, b = tree.query(pts[junction], predicate="dwithin", distance=6.0)
        counts["close_junction_pairs"] = int((a < b).sum())
    lengths = dict(zip(zip(roads["u"], roads["v"], strict=True), roads["length_m"], strict=True))
    for cycle in nx.cycle_basis(nx.Graph(g)):
        ring = sum(lengths.get((u, v), lengths.get((v, u), 0.0)) for u, v in zip(cycle, cycle[1:] + cycle[:1], strict=True))
        counts["short_cycles"] += int(ring < 60.0)
    counts["short_cycles"] += sum(1 for u, v in g.edges() if u == v and g.nodes[u]["degree"] > 2)
    return counts


def score(network, truth_lines_utm, utm, region_utm=None) -> dict[str, float]:
    from geodefect.evaluation.apls import apls, lines_to_graph
    from geodefect.evaluation.errors import road_errors
    from geodefect.workflows.road_evaluate import _clip_lines

    roads, _ = network.to_geodataframes()
    pred = list(roads.to_crs(utm).geometry.values) if len(roads) else []
    truth = truth_lines_utm
    if region_utm is not None:
        pred, truth = _clip_lines(pred, region_utm), _clip_lines(truth, region_utm)
    result = apls(lines_to_graph(truth), lines_to_graph(pred))
    errors = road_errors(truth, pred, buffer_m=ERROR_BUFFER_M)
    km = errors.groupby("error")["length_m"].sum() / 1000
    return {**{k: result[k] for k in ("apls", "truth_to_pred", "pred_to_truth")},
            "missed_km": float(km.get("false_negative", 0.0)), "extra_km": float(km.get("false_positive", 0.0))}


def run_tile(city, tile, lines, transform, crs, shape, params, variants, seed):
    import geopandas as gpd

    from geodefect.graph.vectorize import (
        pixel_size_m,
        vectorize_road_mask,
        vectorize_road_probability,
    )

    utm = lines.estimate_utm_crs()
    truth_utm = list(lines.to_crs(utm).geometry.values)
    mask = truth_mask(lines, transform, crs, shape, utm)
    pixel_m = float(np.mean(pixel_size_m(transform, crs, shape)))
    rows = []
    for variant in variants:
        region = None
        if variant == "clean":
            net = vectorize_road_mask(mask, transform, crs=crs, params=params)
        elif variant == "damaged":
            road_km = sum(g.length for g in truth_utm) / 1000
            net = vectorize_road_mask(damage(mask, pixel_m, road_km, seed), transform, crs=crs, params=params)
        else:  # aoi
            disc, inside = aoi_disc(shape, transform, crs)
            prob = np.where(inside, mask.astype(np.float32), np.nan)
            net = vectorize_road_probability(prob, transform, crs=crs, params=params)
            region = gpd.GeoSeries([disc], crs=crs).to_crs(utm).iloc[0]
        rows.append({"city": city, "tile": tile, "variant": variant, **score(net, truth_utm, utm, region),
                     **artefacts(net, utm), "edges": net.n_edges})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["clean", "damaged", "aoi"], choices=["clean", "damaged", "aoi"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="VectorizeParams overrides")
    parser.add_argument("--tiles", nargs="*", default=None, metavar="CITY_IMG",
                        help="only these tiles, e.g. Vegas_img1454 (the road model's validation tiles)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the per-tile rows here")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs the SpaceNet-3 samples in {DATA}")
    import pandas as pd

    from geodefect.graph.vectorize import VectorizeParams

    params = VectorizeParams(**{k: float(v) for k, v in (s.split("=", 1) for s in args.set)})
    rows = []
    for k, tile in enumerate(iter_tiles()):
        if args.tiles is None or tile[1].split("_", 2)[-1] in args.tiles:
            rows += run_tile(*tile, params, args.variants, args.seed + k)
    df = pd.DataFrame(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    table = df.groupby(["variant", "city"], sort=False).agg(
        tiles=("tile", "size"), apls=("apls", "mean"), t2p=("truth_to_pred", "mean"), p2t=("pred_to_truth", "mean"),
        missed_km=("missed_km", "sum"), extra_km=("extra_km", "sum"), close_jct=("close_junction_pairs", "sum"),
        dead_ends=("dead_ends", "sum"), boundary=("boundary", "sum"), cycles=("short_cycles", "sum"),
        edges=("edges", "sum"),
    )
    print(f"params: {' '.join(args.set) or 'defaults'}")
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
