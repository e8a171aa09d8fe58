"""``geodefect synth``: write synthetic data sets (road scenes; inspection images later).

A click group: each kind of synthetic data is a subcommand (``roads`` here; ``cracks``,
``rail``, ``damage`` are added by decorating a function with ``@synth.command("name")``).
Only click is imported at module level; generators are imported inside the commands.
"""

from __future__ import annotations

import click

from geodefect.cli.options import run_command, verbosity_options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def synth() -> None:
    """Write synthetic data sets (deterministic by seed) for trying geodefect out."""


@synth.command("roads")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--size-px", type=click.IntRange(min=64), default=1024, show_default=True,
              help="Side of the square scene in pixels.")
@click.option("--pixel-size-m", type=click.FloatRange(min=0, min_open=True), default=0.3, show_default=True,
              help="Ground sampling distance in metres.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same scene).")
@click.option("--crs", default="EPSG:32631", show_default=True, help="Projected CRS of the image (metres).")
@click.option("--compress", type=click.Choice(["none", "deflate", "lzw"]), default="none", show_default=True,
              help="GeoTIFF compression of the image.")
@verbosity_options
def roads(out_dir, size_px, pixel_size_m, seed, crs, compress, verbose, quiet) -> None:
    """Write a synthetic aerial road scene to OUT_DIR.

    Files: scene.tif (3-band uint8 GeoTIFF, UTM 31N around Paris by default),
    centerlines.geojson (directed road centerlines in EPSG:4326 with road_class and
    width_m), paris.geojson (AOI polygon, EPSG:4326) and road_mask.tif (the generator's
    own carriageway mask). Example:

        geodefect synth roads demo_scene --size-px 2048 --seed 1
    """
    from geodefect.testing.scenes import make_road_scene

    scene = run_command(
        make_road_scene, out_dir, size_px=size_px, pixel_size_m=pixel_size_m, seed=seed, crs=crs,
        compress=None if compress == "none" else compress, verbose=verbose, quiet=quiet,
    )
    for name in ("image", "centerlines", "aoi", "road_mask"):
        click.echo(f"{name}: {getattr(scene, name)}")
