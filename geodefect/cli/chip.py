"""``geodefect chip``: cut training chips (images + labels) from rasters or a catalog dataset.

Thin: parse options, pick the workflow, ``run_command`` it, print its summary. Road chips
(``--centerlines`` or a road dataset) go to ``geodefect.workflows.roads.chip``; other
(inspection) chip workflows plug in through :func:`_dispatch`.
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


def _road_options(fn):
    """Options of road chipping (kept together so inspection options can sit beside them)."""
    opts = [
        click.option("--centerlines", type=click.Path(dir_okay=False), default=None,
                     help="Road centerlines (GeoJSON, GPKG, Shapefile; any CRS) for road chips."),
        click.option("--buffer-m", type=float, default=None,
                     help="Road half-width in metres around each centerline [default: 2.0, SpaceNet's mask width 4 m]."),
        click.option("--width-field", default=None,
                     help="Centerline attribute with the road width in metres: buffer = width / 2 per road."),
        click.option("--label", type=click.Choice(["buffer", "gaussian"]), default=None,
                     help="Road mask: buffer of --buffer-m, or thresholded Gaussian (Batra et al. 2019) [default: buffer]."),
        click.option("--sigma-px", type=float, default=None, help="Gaussian label sigma in pixels [default: 15]."),
        click.option("--threshold", type=float, default=None, help="Gaussian label threshold [default: 0.76]."),
        click.option("--orient-bin-deg", type=int, default=None,
                     help="Orientation bin width in degrees; 360/bin + 1 classes, 0 = background [default: 20]."),
        click.option("--orient-width-px", type=float, default=None,
                     help="Width in pixels of the orientation band along centerlines [default: 8]."),
        click.option("--aoi", type=click.Path(dir_okay=False), default=None,
                     help="Polygon file (any CRS): keep only windows that touch it."),
        click.option("--keep-empty", type=float, default=None,
                     help="Share of road-free chips kept, 0..1, drawn with --seed [default: 0.1]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _inspection_options(fn):
    """Options of inspection chipping (image folder + masks or COCO boxes; geodefect.inspection_chips)."""
    opts = [
        click.option("--masks", type=click.Path(file_okay=False), default=None,
                     help="Inspection: mask folder paired with the IMAGES folder by file stem (>127 = defect)."),
        click.option("--coco", type=click.Path(dir_okay=False), default=None,
                     help="Inspection: COCO JSON with defect boxes (filled boxes become weak masks)."),
        click.option("--coco-category", multiple=True, default=None,
                     help="COCO category names used as defects (repeatable) [default: all]."),
        click.option("--task", type=click.Choice(["crack_classify", "crack_segment", "rail_segment"]), default=None,
                     help="Inspection task [default: rail_segment with --coco, crack_segment with --masks]."),
        click.option("--strip-height-px", type=int, default=None, help="rail_segment: strip height [default: 100]."),
        click.option("--strip-stride-px", type=int, default=None, help="rail_segment: step between strips [default: strip height]."),
        click.option("--strip-width-px", type=int, default=None,
                     help="rail_segment: band width centred on the railhead [default: the full image width]."),
        click.option("--input-px", type=int, default=None, help="crack_classify: model input side [default: 224]."),
        click.option("--min-defect-px", type=int, default=None,
                     help="crack_classify: crack pixels for a chip to count as crack [default: 10]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.command("chip")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), help="Output chip folder.")
@click.option("--dataset", default=None,
              help="Named dataset(s) from data_catalog.yaml instead of IMAGE...; several: a,b,c.")
@click.option("--pan-sharpen", "pan_sharpen", type=click.Path(dir_okay=False), default=None,
              help="Multispectral raster of the panchromatic IMAGE: pan-sharpen on the fly (GDAL); --bands then "
                   "picks its bands by number or name [default: RGB, 5,3,2 for 8-band WorldView-3].")
@click.option("--size-px", type=int, default=None, help="Chip side in pixels [default: 512].")
@click.option("--stride-px", type=int, default=None, help="Step between chips in pixels, 1..size [default: 384].")
@_road_options
@_inspection_options
@click.option("--cell-size-m", type=float, default=None,
              help="Resample imagery to this pixel size in metres (bilinear; area average when downsampling).")
@click.option("--max-nodata", type=float, default=None, help="Skip chips with a larger share of nodata [default: 0.25].")
@click.option("--bands", default=None, help="1-based bands to export, e.g. 1,2,3 [default: all].")
@click.option("--stretch/--no-stretch", default=None,
              help="Percentile (2-98%) stretch to 8 bit [default: only for non-uint8 rasters].")
@click.option("--val-fraction", type=float, default=None, help="Share of spatial blocks for validation [default: 0.2].")
@click.option("--val-sources", default=None,
              help="Validate on whole rasters: comma-separated parts of their file names (e.g. img1454,img38); "
                   "all their chips are val, the rest train [default: spatial blocks].")
@click.option("--seed", type=int, default=None, help="Seed of the split and the road-free draw [default: 0].")
@click.option("--split-block-px", type=int, default=None,
              help="Side of the spatial blocks drawn for train/val [default: 4 x stride].")
@click.option("--workers", type=int, default=None, help="Threads exporting chips in parallel [default: 2].")
@overwrite_option
@config_option
@verbosity_options
def chip(images, out_dir, dataset, overwrite, config_file, verbose, quiet, **options):
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
    inspection = {k: options.pop(k) for k in ("masks", "coco")}
    if inspection["masks"] or inspection["coco"] or options.get("task") or _is_inspection_dataset(dataset):
        summary = run_command(_inspection_chip(), list(images), out_dir, dataset=dataset, **inspection,
                              config_file=config_file, overrides=drop_none(**options), overwrite=overwrite,
                              verbose=verbose, quiet=quiet)
        click.echo(summary.text())
        return
    centerlines = options.pop("centerlines")
    aoi = options.pop("aoi")
    pan_sharpen = options.pop("pan_sharpen")
    if options.get("val_sources"):
        options["val_sources"] = [v.strip() for v in options["val_sources"].split(",") if v.strip()]
    workflow = _dispatch(centerlines, dataset)
    summary = run_command(
        workflow, list(images), out_dir, centerlines=centerlines, aoi=aoi, dataset=dataset, pan_sharpen=pan_sharpen,
        config_file=config_file, overrides=drop_none(**options), overwrite=overwrite,
        verbose=verbose, quiet=quiet,
    )
    click.echo(summary.text())


def _inspection_chip():
    from geodefect.workflows.inspection import chip as inspection_chip

    return inspection_chip


def _is_inspection_dataset(dataset) -> bool:
    """True for a catalog dataset whose task is an inspection task (crack_*, rail_segment)."""
    if not dataset:
        return False
    from geodefect.catalog import get_dataset

    try:
        return get_dataset(dataset).task in ("crack_classify", "crack_segment", "rail_segment")
    except Exception:  # unknown names are reported by the road workflow's own lookup
        return False


def _dispatch(centerlines, dataset):
    """The chip workflow for these inputs: road chips for centerlines or a road dataset."""
    from geodefect.workflows import roads

    return roads.chip
