"""``geodefect synth``: write synthetic data sets (road scenes; inspection images later).

A click group: each kind of synthetic data is a subcommand (``roads`` here; ``cracks``,
``rail``, ``damage`` are added by decorating a function with ``@synth.command("name")``).
Only click is imported at module level; generators are imported inside the commands.
"""

from __future__ import annotations

import click

from geodefect.cli.options import overwrite_option, run_command, verbosity_options


def write_folder_atomically(out_dir, write, *, overwrite: bool, verbose: bool, quiet: bool) -> None:
    """Run ``write(tmp_folder)``; rename the folder to ``out_dir`` once it completes (errors as one line)."""

    def _write():
        from geodefect.io.atomic import atomic_dir

        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            write(tmp)

    run_command(_write, verbose=verbose, quiet=quiet)


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
@click.option("--crs", default="EPSG:32631", show_default=True, help="CRS of the image; EPSG:4326 gives SpaceNet-like degree pixels.")
@click.option("--compress", type=click.Choice(["none", "deflate", "lzw"]), default="none", show_default=True,
              help="GeoTIFF compression of the image.")
@overwrite_option
@verbosity_options
def roads(out_dir, size_px, pixel_size_m, seed, crs, compress, overwrite, verbose, quiet) -> None:
    """Write a synthetic aerial road scene to OUT_DIR.

    Files: scene.tif (3-band uint8 GeoTIFF, UTM 31N around Paris by default),
    centerlines.geojson (directed road centerlines in EPSG:4326 with road_class and
    width_m), paris.geojson (AOI polygon, EPSG:4326) and road_mask.tif (the generator's
    own carriageway mask). Example:

        geodefect synth roads demo_scene --size-px 2048 --seed 1
    """
    from geodefect.testing.scenes import write_road_scene

    scene = run_command(
        write_road_scene, out_dir, size_px=size_px, pixel_size_m=pixel_size_m, seed=seed, crs=crs,
        compress=None if compress == "none" else compress, overwrite=overwrite, verbose=verbose, quiet=quiet,
    )
    for name in ("image", "centerlines", "aoi", "road_mask"):
        click.echo(f"{name}: {getattr(scene, name)}")


@synth.command("damage")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--countries", default="Alpha,Bravo,Charlie", show_default=True,
              help="Comma-separated country (domain) names; each gets its own style.")
@click.option("--n-images", type=click.IntRange(min=1), default=24, show_default=True, help="Images per country.")
@click.option("--size-px", type=click.IntRange(min=128), default=256, show_default=True, help="Image side in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists.")
@verbosity_options
def damage(out_dir, countries, n_images, size_px, seed, overwrite, verbose, quiet) -> None:
    """Write RDD-like road-damage folders (VOC XML boxes of D00/D10/D20/D40) to OUT_DIR.

    Layout as RDD2022: OUT_DIR/COUNTRY/train/images/*.jpg and
    OUT_DIR/COUNTRY/train/annotations/xmls/*.xml. Example:

        geodefect synth damage rdd_synth --countries A,B,C --n-images 40
    """
    from geodefect.testing.damage import make_damage_dataset

    write_folder_atomically(
        out_dir,
        lambda tmp: make_damage_dataset(tmp, countries=tuple(c.strip() for c in countries.split(",") if c.strip()),
                                        n_images=n_images, size_px=size_px, seed=seed),
        overwrite=overwrite, verbose=verbose, quiet=quiet,
    )
    click.echo(f"damage: {out_dir}")


@synth.command("panoramas")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n-images", type=click.IntRange(min=2), default=24, show_default=True, help="Number of panoramas.")
@click.option("--height-px", type=click.IntRange(min=64), default=128, show_default=True, help="Panorama height.")
@click.option("--width-px", type=click.IntRange(min=128), default=512, show_default=True, help="Panorama width.")
@click.option("--damage-fraction", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of panoramas with road damage (label 1).")
@click.option("--style-index", type=int, default=0, show_default=True,
              help="Road style = that of synthetic country number N of `synth damage`.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists.")
@verbosity_options
def panoramas(out_dir, n_images, height_px, width_px, damage_fraction, style_index, seed, overwrite, verbose, quiet) -> None:
    """Write synthetic street panoramas (images/, masks/ road surface, labels.csv) to OUT_DIR.

    Example:

        geodefect synth panoramas panos --n-images 40 --seed 1
    """
    from geodefect.testing.damage import make_panoramas

    write_folder_atomically(
        out_dir,
        lambda tmp: make_panoramas(tmp, n_images=n_images, height_px=height_px, width_px=width_px,
                                   damage_fraction=damage_fraction, style_index=style_index, seed=seed),
        overwrite=overwrite, verbose=verbose, quiet=quiet,
    )
    click.echo(f"panoramas: {out_dir}")


@synth.command("cracks")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n-images", type=click.IntRange(min=1), default=24, show_default=True, help="Number of images.")
@click.option("--height-px", type=click.IntRange(min=32), default=256, show_default=True, help="Image height.")
@click.option("--width-px", type=click.IntRange(min=32), default=256, show_default=True, help="Image width.")
@click.option("--crack-fraction", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of images with a crack (the others have only joints, stains, bolt holes).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists.")
@verbosity_options
def cracks(out_dir, n_images, height_px, width_px, crack_fraction, seed, overwrite, verbose, quiet) -> None:
    """Write synthetic tunnel-lining crack images (images/, masks/ 0/255, labels.csv) to OUT_DIR.

    Example:

        geodefect synth cracks cracks_synth --n-images 40 --seed 1
    """
    from geodefect.testing.cracks import make_crack_dataset

    write_folder_atomically(
        out_dir,
        lambda tmp: make_crack_dataset(tmp, n_images=n_images, height_px=height_px, width_px=width_px,
                                       crack_frac=crack_fraction, seed=seed),
        overwrite=overwrite, verbose=verbose, quiet=quiet,
    )
    click.echo(f"cracks: {out_dir} (images/, masks/, labels.csv)")


@synth.command("rail")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n-images", type=click.IntRange(min=1), default=12, show_default=True, help="Number of images.")
@click.option("--height-px", type=click.IntRange(min=32), default=1000, show_default=True,
              help="Image height (along the rail).")
@click.option("--width-px", type=click.IntRange(min=16), default=160, show_default=True,
              help="Image width (RSDDs Type-I: 160, Type-II: 55; line-scan frames: e.g. 1024).")
@click.option("--rail-width-px", type=click.IntRange(min=8), default=None,
              help="Railhead band width [default: 70% of --width-px].")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists.")
@verbosity_options
def rail(out_dir, n_images, height_px, width_px, rail_width_px, seed, overwrite, verbose, quiet) -> None:
    """Write synthetic railhead images (images/, masks/ 0/255, boxes_coco.json) to OUT_DIR.

    Example:

        geodefect synth rail rail_synth --n-images 20 --height-px 1000 --width-px 160
    """
    from geodefect.testing.rail import make_rail_dataset

    write_folder_atomically(
        out_dir,
        lambda tmp: make_rail_dataset(tmp, n_images=n_images, height_px=height_px, width_px=width_px,
                                      rail_width_px=rail_width_px, seed=seed),
        overwrite=overwrite, verbose=verbose, quiet=quiet,
    )
    click.echo(f"rail: {out_dir} (images/, masks/, boxes_coco.json)")
