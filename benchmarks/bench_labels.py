"""Benchmark road label burning per window against the library way, measured in the same run.

Both burn the same labels (road mask by a metric buffer + orientation bands in pixels) for
every window of a 512/384 grid over a raster of ``--size`` px at 0.3 m with ~2000 random
lines per 10000² px (the lines of ``bench_chip.py``):

* ``capsules``: :class:`geodefect.labels.RoadLabeler` (exact capsules, numpy);
* ``rasterio``: the same segments buffered once with shapely, STRtree-queried per window and
  burned with ``rasterio.features.rasterize`` (mask, then orientation with later-wins).

Prints CPU (process) time per window for each, the ratio, and the share of label pixels on
which the two disagree (boundary pixels of polygonised round ends, and order at overlaps).

    .venv/bin/python benchmarks/bench_labels.py [--size 10000] [--repeats 3] [--buffer-m 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_lines(size: int, seed: int = 0):
    import shapely
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    transform = from_origin(448_000.0, 5_412_000.0, 0.3, 0.3)
    lines = []
    for _ in range(max(1, int(2000 * (size / 10000) ** 2))):
        pts = [rng.uniform(0, size, 2)]
        for _ in range(rng.integers(2, 6)):
            pts.append(np.clip(pts[-1] + rng.normal(0, 150, 2), 0, size))
        lines.append(shapely.LineString([transform @ (c, r) for c, r in pts]))
    return lines, transform


class RasterioLabeler:
    """The library way: shapely buffers once, rasterio.features.rasterize per window."""

    def __init__(self, lines, *, buffer_m: float, width_px: float, pixel_m: float, bin_deg: int = 20):
        import shapely

        from geodefect.labels import angle_to_bin
        from geodefect.labels.orientation import segment_angles_deg

        coords, index = shapely.get_coordinates(lines, return_index=True)
        same = index[1:] == index[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        segments = shapely.linestrings(np.stack([a, b], axis=1))
        self.mask_geoms = shapely.buffer(segments, buffer_m, quad_segs=8)
        self.orient_geoms = shapely.buffer(segments, width_px / 2 * pixel_m, quad_segs=8)
        d = b - a  # north-up grid: d_col ∝ dx, d_row ∝ -dy
        self.bins = angle_to_bin(segment_angles_deg(d[:, 0], -d[:, 1]), bin_deg=bin_deg)
        self.mask_tree = shapely.STRtree(self.mask_geoms)
        self.orient_tree = shapely.STRtree(self.orient_geoms)

    def burn(self, transform, height: int, width: int):
        import shapely
        from rasterio.features import rasterize

        box = shapely.box(*_bounds(transform, height, width))
        mask = np.zeros((height, width), np.uint8)
        orient = np.zeros((height, width), np.uint8)
        hits = np.sort(self.mask_tree.query(box))
        if hits.size:
            rasterize(self.mask_geoms[hits], out_shape=mask.shape, transform=transform, out=mask)
        hits = np.sort(self.orient_tree.query(box))
        if hits.size:
            rasterize(zip(self.orient_geoms[hits], self.bins[hits].tolist(), strict=True), out_shape=orient.shape,
                      transform=transform, out=orient)
        return mask, orient


def _bounds(transform, height, width):
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (width, height)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--buffer-m", type=float, default=2.0)
    args = parser.parse_args()

    from rasterio.windows import transform as window_transform

    from geodefect.labels import RoadLabeler
    from geodefect.windows import iter_windows

    lines, transform = make_lines(args.size)
    windows = [window_transform(w, transform) for w in iter_windows(args.size, args.size, size_px=512, stride_px=384)]
    labelers = {
        "capsules": RoadLabeler(lines, "EPSG:32631", buffer_m=args.buffer_m, width_px=8),
        "rasterio": RasterioLabeler(lines, buffer_m=args.buffer_m, width_px=8, pixel_m=0.3),
    }
    best = {name: np.inf for name in labelers}
    for _ in range(args.repeats):
        for name, labeler in labelers.items():
            t0 = time.process_time()
            for t in windows:
                labeler.burn(t, 512, 512)
            best[name] = min(best[name], (time.process_time() - t0) / len(windows))
    diff_mask = diff_orient = label_px = 0
    for t in windows[:: max(1, len(windows) // 40)]:
        (m1, o1), (m2, o2) = (labelers[n].burn(t, 512, 512) for n in labelers)
        diff_mask += int((m1 != m2).sum())
        diff_orient += int((o1 != o2).sum())
        label_px += int(m2.sum())
    print(f"raster {args.size}² px, {len(lines)} lines, {len(windows)} windows of 512/384, buffer {args.buffer_m} m")
    print("| labeler | CPU ms / window |")
    print("|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds * 1e3:.2f} |")
    print(f"ratio capsules / rasterio: {best['capsules'] / best['rasterio']:.2f}")
    print(f"disagreement on sampled windows: mask {diff_mask / max(label_px, 1):.4f}, "
          f"orientation {diff_orient / max(label_px, 1):.4f} (of mask pixels)")


if __name__ == "__main__":
    main()
