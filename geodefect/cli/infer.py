"""``geodefect infer``: a trained model over GeoTIFF(s) or images, restricted to an AOI.

Thin: the workflow reads the model package's recipe and runs its task's inference
(``geodefect.tasks``); options a task does not understand are reported by that task
(ConfigError listing the valid ones).
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


def _infer_options():
    """One option per field of every task's inference config (defaults shown per task)."""
    from geodefect.cli.generate import collect, options
    from geodefect.graph.vectorize import VectorizeParams
    from geodefect.inference.inspection import InspectionInferConfig
    from geodefect.inference.panorama import PanoramaInferConfig
    from geodefect.inference.roads import RoadInferConfig

    return options(collect([(RoadInferConfig, {}, "roads"), (VectorizeParams, {}, "roads"),
                            (InspectionInferConfig, {}, "inspection"), (PanoramaInferConfig, {}, "panoramas")]))


@click.command("infer")
@click.argument("args", nargs=-1, required=True, type=click.Path(), metavar="[MODEL] IMAGE...")
@click.option("--model", "model_opt", default=None,
              help="Model package path or pretrained name (e.g. spacenet3-roads); then every argument is an IMAGE.")
@click.option("--pan-sharpen", "pan_sharpen", type=click.Path(dir_okay=False), default=None,
              help="Multispectral raster of the panchromatic IMAGE: pan-sharpen on the fly (GDAL) into the MUL "
                   "bands the model was trained on (its recipe's, else RGB).")
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@_infer_options()
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the full run record (options, timings, outputs) as JSON to this file.")
@overwrite_option
@config_option
@verbosity_options
def infer(args, model_opt, out_dir, json_out, overwrite, config_file, verbose, quiet, **options):
    """Run MODEL (a .pt package from `geodefect train`, its .onnx from `geodefect export`, or a pretrained
    name) over IMAGE... and write OUT_DIR.

    \b
    Example:
      geodefect infer runs/roads/best.pt scene.tif --aoi paris.geojson -o out_roads
      geodefect infer --model spacenet3-roads PAN.tif --pan-sharpen MUL.tif --aoi aoi.geojson -o out

    \b
    Road models write (in the raster's CRS, nothing outside the AOI):
      road_prob.tif (COG), road_mask.tif, orientation.tif, roads.gpkg (layers roads, nodes),
      graph.graphml, run.json. Several images: one subfolder each.
    
    Inspection models (crack_segment, rail_segment, crack_classify) take image files or a
    folder and write masks/, prob/ (PNG), overlays/ (JPEG for JPEG photos, else PNG),
    predictions.csv and run.json:
      geodefect infer seg/best.pt photos/ --classifier cls/best.pt -o out
    OUT_DIR is written atomically; --overwrite replaces an existing one.
    """
    from geodefect.workflows.infer import infer as infer_workflow

    model, images = (model_opt, list(args)) if model_opt else (args[0], list(args[1:]))
    if not images:
        raise click.UsageError("no IMAGE given: geodefect infer MODEL IMAGE... (or --model MODEL IMAGE...)")
    summary = run_command(infer_workflow, model, list(images), out_dir, config_file=config_file,
                          overrides=drop_none(**options), overwrite=overwrite, verbose=verbose, quiet=quiet)
    click.echo(summary.text())
    if json_out:
        summary.write_json(json_out)
