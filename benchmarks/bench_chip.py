"""Benchmark `geodefect chip` against the bare I/O limit measured in the same run.

For each raster size (default 5000 and 10000 px square, 3-band uint8, tiled GeoTIFF, with
~2000 synthetic road lines per 10000² px) it runs, each in its own subprocess:

* ``chip``: the full road chip export (labels, orientation, index, meta), every window
  exported (``keep_empty=1``, ``val_fraction=0``) so all runs touch the same windows;
* ``bare_rasterio``: the issue's limit: rasterio read of the same windows + write of the
  same image files with rasterio (GDAL's GTiff driver), no labels;
* ``bare_fast``: the same reads + image files written with geodefect's own chip writer
  (the stricter limit: what the image part of a chip export costs at best).

Each is run ``--repeats`` times (alternating); the minimum wall time is kept. Peak RSS
is the child's ``ru_maxrss`` (``os.wait4``). Prints a Markdown table.

    .venv/bin/python benchmarks/bench_chip.py [--sizes 5000 10000] [--repeats 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE_PX, STRIDE_PX = 512, 384


def make_inputs(work: Path, size: int, seed: int = 0) -> tuple[Path, Path]:
    """A tiled uint8 3-band GeoTIFF (noise + dark roads) and ~2000 lines per 10000² px."""
    import numpy as np
    import rasterio
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    from shapely.geometry import LineString

    from geodefect.testing.tiny import write_lines

    image, lines_path = work / f"scene_{size}.tif", work / f"roads_{size}.geojson"
    if image.exists() and lines_path.exists():
        return image, lines_path
    rng = np.random.default_rng(seed)
    transform = from_origin(448_000.0, 5_412_000.0, 0.3, 0.3)
    n_lines = max(1, int(2000 * (size / 10000) ** 2))
    lines = []
    for _ in range(n_lines):
        pts = [rng.uniform(0, size, 2)]
        for _ in range(rng.integers(2, 6)):
            pts.append(np.clip(pts[-1] + rng.normal(0, 150, 2), 0, size))
        lines.append(LineString([transform @ (c, r) for c, r in pts]))
    with rasterio.open(image, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=transform, tiled=True, blockxsize=512,
                       blockysize=512) as dst:
        for r0 in range(0, size, 1024):
            h = min(1024, size - r0)
            win = Window(0, r0, size, h)
            block = rng.integers(90, 170, (3, h, size), dtype=np.uint8)
            wt = rasterio.windows.transform(win, transform)
            road = rasterize([ln.buffer(1.5) for ln in lines], out_shape=(h, size), transform=wt)
            block[:, road > 0] //= 3
            dst.write(block, window=win)
    write_lines(lines_path, lines, crs="EPSG:32631", to_crs="EPSG:4326")
    return image, lines_path


# ----------------------------------------------------------------------------- child jobs


def job_chip(image: str, lines: str, out: str) -> dict:
    from geodefect.chips.geo import chip

    s = chip([image], out, task="roads", centerlines=lines,
             overrides={"size_px": SIZE_PX, "stride_px": STRIDE_PX, "keep_empty": 1.0, "val_fraction": 0.0})
    return {"n_chips": s.n_chips}


def job_bare(image: str, lines: str, out: str, writer: str) -> dict:
    import rasterio
    from rasterio.windows import transform as win_transform

    from geodefect.io.chip_writer import ChipWriter
    from geodefect.windows import iter_windows

    os.makedirs(out, exist_ok=True)
    n = 0
    with rasterio.open(image) as src:
        fast = ChipWriter(src.crs)
        for w in iter_windows(src.height, src.width, size_px=SIZE_PX, stride_px=STRIDE_PX):
            arr = src.read(window=w)
            path = os.path.join(out, f"{int(w.row_off)}_{int(w.col_off)}.tif")
            t = win_transform(w, src.transform)
            if writer == "fast":
                fast.write(path, arr, transform=t)
            else:
                with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                                   count=arr.shape[0], dtype=arr.dtype, crs=src.crs, transform=t) as dst:
                    dst.write(arr)
            n += 1
    return {"n_chips": n}


def run_child(job: str, image: Path, lines: Path, out: Path) -> dict:
    """Run one job in a subprocess; wall time of the job itself and the child's peak RSS."""
    cmd = [sys.executable, __file__, "--child", job, str(image), str(lines), str(out)]
    # the same GDAL block cache for every job (geodefect chip sets this itself)
    env = {**os.environ, "GEODEFECT_NO_PROGRESS": "1", "GDAL_CACHEMAX": "64"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    stdout = proc.stdout.read()
    _, status, rusage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{job} failed: {stdout}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = rusage.ru_maxrss / 1024
    result["cpu_s"] = rusage.ru_utime + rusage.ru_stime - result.pop("startup_cpu_s")
    return result


def child_main(job: str, image: str, lines: str, out: str) -> None:
    # imports are not part of the measurement (start-up cost is the same for any raster)
    import geopandas  # noqa: F401
    import pyogrio  # noqa: F401
    import rasterio  # noqa: F401
    import tifffile  # noqa: F401
    import tqdm  # noqa: F401

    import geodefect.chips.export  # noqa: F401
    import geodefect.chips.geo  # noqa: F401
    import geodefect.config  # noqa: F401
    import geodefect.io.chip_writer  # noqa: F401
    import geodefect.io.raster  # noqa: F401
    import geodefect.io.vector  # noqa: F401
    import geodefect.labels  # noqa: F401
    import geodefect.progress  # noqa: F401
    import geodefect.windows  # noqa: F401

    t0, c0 = time.perf_counter(), time.process_time()
    if job == "chip":
        res = job_chip(image, lines, out)
    else:
        res = job_bare(image, lines, out, writer=job.removeprefix("bare_"))
    res["seconds"] = time.perf_counter() - t0
    res["startup_cpu_s"] = c0  # CPU spent on imports, subtracted from the child's total
    print(json.dumps(res))


# ----------------------------------------------------------------------------- main


def bench_size(work: Path, size: int, repeats: int) -> dict:
    image, lines = make_inputs(work, size)
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for job in ("bare_rasterio", "bare_fast", "chip"):
            out = work / f"out_{job}_{size}"
            shutil.rmtree(out, ignore_errors=True)
            res = run_child(job, image, lines, out)
            shutil.rmtree(out, ignore_errors=True)
            if job not in best:
                best[job] = res
            else:  # best wall time and best CPU time (each a lower bound of the noise), worst RSS
                b = best[job]
                b["seconds"], b["cpu_s"] = min(b["seconds"], res["seconds"]), min(b["cpu_s"], res["cpu_s"])
                b["peak_rss_mb"] = max(b["peak_rss_mb"], res["peak_rss_mb"])
    return best


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(*sys.argv[2:6])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_chip_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"chip {SIZE_PX}/{STRIDE_PX} px, 3-band uint8, tiled GeoTIFF; best of {args.repeats}; "
          f"work dir {work}; load average at start: {os.getloadavg()}")
    print("| raster | chips | wall s: bare rasterio / bare fast / chip | wall ratio vs rasterio (vs fast) | "
          "CPU s: bare rasterio / bare fast / chip | CPU ratio vs rasterio (vs fast) | peak RSS MB: bare / chip |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        b = bench_size(work, size, args.repeats)
        br, bf, ch = b["bare_rasterio"], b["bare_fast"], b["chip"]
        assert br["n_chips"] == bf["n_chips"] == ch["n_chips"], b
        print(f"| {size}² | {ch['n_chips']} | {br['seconds']:.2f} / {bf['seconds']:.2f} / {ch['seconds']:.2f} | "
              f"{ch['seconds'] / br['seconds']:.2f}× ({ch['seconds'] / bf['seconds']:.2f}×) | "
              f"{br['cpu_s']:.2f} / {bf['cpu_s']:.2f} / {ch['cpu_s']:.2f} | "
              f"{ch['cpu_s'] / br['cpu_s']:.2f}× ({ch['cpu_s'] / bf['cpu_s']:.2f}×) | "
              f"{br['peak_rss_mb']:.0f} / {ch['peak_rss_mb']:.0f} |", flush=True)
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}; CPUs: {os.cpu_count()}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
