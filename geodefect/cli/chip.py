"""``geodefect chip``: cut training chips (images + labels) from rasters or a catalog dataset.

Thin: parse options, call ``geodefect.workflows.chip`` (which picks the task from --task, the
dataset or the labels given), print its summary.
"""

from __future__ import annotations

import click

from geodefect.cli.options import (
    config_option,
    drop_none,
    overwrite_option,
    run_command,
    verbosity_options,
)


def _chip_options():
    """One option per field of the chip configs (GeoTIFF chips, image-folder chips)."""
    from geodefect.chips.geo import RoadChipConfig
    from geodefect.chips.images import InspectionChipConfig
    from geodefect.cli.generate import collect, options

    images = {"size_px": "128 (crack_segment), 256, or the whole image (crack_classify)", "stride_px": "the size",
              "keep_empty": "0.5 (crack_segment), 1 (other image tasks)"}
    roads = {"stride_px": "3/4 of the size"}
    return options(collect([(RoadChipConfig, roads, "roads"), (InspectionChipConfig, images, "image folders")],
                           skip=("coco_category",)))


@click.command("chip")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), help="Output chip folder.")
@click.option("--dataset", default=None,
              help="Named dataset(s) from data_catalog.yaml instead of IMAGE...; several: a,b,c.")
@click.option("--pan-sharpen", "pan_sharpen", type=click.Path(dir_okay=False), default=None,
              help="Multispectral raster of the panchromatic IMAGE: pan-sharpen on the fly (GDAL); --bands then "
                   "picks its bands by number or name (RGB, 5,3,2 for 8-band WorldView-3, when not given).")
@click.option("--centerlines", type=click.Path(dir_okay=False), default=None,
              help="Road centerlines (GeoJSON, GPKG, Shapefile; any CRS) for road chips.")
@click.option("--aoi", type=click.Path(dir_okay=False), default=None,
              help="Polygon file (any CRS): keep only windows that touch it.")
@click.option("--masks", type=click.Path(file_okay=False), default=None,
              help="Image folders: mask folder paired with the IMAGES folder by file stem (>127 = defect).")
@click.option("--coco", type=click.Path(dir_okay=False), default=None,
              help="Image folders: COCO JSON with defect boxes (filled boxes become weak masks).")
@click.option("--coco-category", multiple=True, default=None,
              help="COCO category names used as defects (repeatable); all when not given.")
@click.option("--task", default=None,
              help="Task of the chips (see `geodefect train --help`); when not given: the dataset's, else "
                   "rail_segment with --coco, crack_segment with --masks, roads with --centerlines.")
@_chip_options()
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the full chip record (meta.json's content) as JSON to this file.")
@overwrite_option
@config_option
@verbosity_options
def chip(images, out_dir, dataset, json_out, overwrite, config_file, verbose, quiet, **options):
    """Cut chips from IMAGE... (GeoTIFFs) with labels from --centerlines.

    \b
    Example:
      geodefect chip scene.tif --centerlines roads.geojson -o chips --size-px 512
      geodefect chip --dataset spacenet_vegas_sample -o chips_vegas
      geodefect chip PAN.tif --pan-sharpen MUL.tif --bands red,green,blue --centerlines roads.geojson -o chips
      geodefect chip photos/ --masks masks/ --task crack_segment --size-px 256 -o chips_cracks
      geodefect chip rail/images --coco rail/boxes.json --coco-category defect --strip-height-px 100 -o chips_rail

    Writes images/, labels/ (road 0/1), orientation/ (bins), index.gpkg and meta.json.
    Rerunning an interrupted command resumes it.
    """
    from geodefect.workflows.chip import chip as chip_workflow

    sources = {k: options.pop(k) for k in ("masks", "coco", "centerlines", "aoi", "task", "pan_sharpen")}
    summary = run_command(chip_workflow, list(images), out_dir, dataset=dataset, **sources, config_file=config_file,
                          overrides=drop_none(**options), overwrite=overwrite, verbose=verbose, quiet=quiet)
    click.echo(summary.text())
    if json_out:
        summary.write_json(json_out)
