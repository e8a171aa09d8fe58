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
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@_infer_options()
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="CPU threads for torch (0 = one per core); 1 is faster on a CPU shared with other jobs.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the full run record (options, timings, outputs) as JSON to this file.")
@overwrite_option
@config_option
@verbosity_options
def infer(model, images, out_dir, json_out, overwrite, config_file, verbose, quiet, **options):
    """Run MODEL (a package from `geodefect train`) over IMAGE... and write OUT_DIR.

    \b
    Example:
      geodefect infer runs/roads/best.pt scene.tif --aoi paris.geojson -o out_roads

    \b
    Road models write (in the raster's CRS, nothing outside the AOI):
      road_prob.tif (COG), road_mask.tif, orientation.tif, roads.gpkg (layers roads, nodes),
      graph.graphml, run.json. Several images: one subfolder each.
    
    Inspection models (crack_segment, rail_segment, crack_classify) take image files or a
    folder and write masks/, prob/, overlays/ (PNG), predictions.csv and run.json:
      geodefect infer seg/best.pt photos/ --classifier cls/best.pt --threshold 0.5 -o out
    OUT_DIR is written atomically; --overwrite replaces an existing one.
    """
    from geodefect.workflows.infer import infer as infer_workflow

    summary = run_command(infer_workflow, model, list(images), out_dir, config_file=config_file,
                          overrides=drop_none(**options), overwrite=overwrite, verbose=verbose, quiet=quiet)
    click.echo(summary.text())
    if json_out:
        summary.write_json(json_out)
