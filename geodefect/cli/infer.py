"""``geodefect infer``: a trained model over GeoTIFF(s) or images, restricted to an AOI.

Thin: read the model package's recipe, dispatch on its task to the task's workflow
(``geodefect.workflows.workflow_for_task(task).infer``), print the summary. Options a task
does not understand are reported by that task (ConfigError listing the valid ones).
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


def _sliding_options(fn):
    """Window, batch, blend and TTA options (shared by every task that slides windows)."""
    opts = [
        click.option("--aoi", type=click.Path(dir_okay=False), default=None,
                     help="Polygon file (any CRS): only windows touching it are read; nothing outside it is written."),
        click.option("--size-px", type=int, default=None, help="Window side in pixels [default: the model's]."),
        click.option("--stride-px", type=int, default=None,
                     help="Step between windows, 1..size [default: the model's; overlap = size - stride is blended]."),
        click.option("--batch-size", type=int, default=None, help="Windows per forward pass [default: 8]."),
        click.option("--blend", type=click.Choice(["hann", "crop", "mean"]), default=None,
                     help="Weight of overlapping windows: hann cross-fades the overlap (no seams) [default: hann]."),
        click.option("--tta/--no-tta", default=None, help="Flip test-time augmentation (4x compute) [default: off]."),
        click.option("--tta-merge", type=click.Choice(["mean", "max"]), default=None,
                     help="How TTA predictions are merged [default: mean]."),
        click.option("--threshold", type=float, default=None,
                     help="Road probability threshold; for inspection models the stage-1 crack probability "
                          "above which stage 2 runs [default: 0.5]."),
        click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: auto]."),
        click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime", "torch-bf16"]), default=None,
                     help="Model backend: auto = the file's (.pt torch, .onnx onnxruntime); torch-bf16 = CPU bf16 "
                          "autocast, only on CPUs with bf16 instructions [default: auto]."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads of the model forward [default: the backend's]."),
        click.option("--bands", default=None, help="1-based bands to feed the model, e.g. 1,2,3 [default: all]."),
        click.option("--resample/--no-resample", default=None,
                     help="Resample on the fly when the pixel size differs from the model's [default: on]."),
        click.option("--max-memory-mb", type=float, default=None,
                     help="Budget of the stitching buffers; wider rasters are processed in strips [default: 256]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _inspection_options(fn):
    """Two-stage inspection options (crack classifier -> segmenter; geodefect.inference.inspection)."""
    opts = [
        click.option("--classifier", type=click.Path(dir_okay=False), default=None,
                     help="Stage-1 crack_classify package; MODEL (the segmenter) runs only on images it flags."),
        click.option("--mask-threshold", type=float, default=None,
                     help="Inspection models: defect probability threshold of the masks [default: 0.5]."),
        click.option("--rail-band-px", type=click.IntRange(min=0), default=None,
                     help="Rail models: predict only on a band this wide centred on the railhead, 0 = the whole "
                          "image [default: the strip width the model was trained on]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _vector_options(fn):
    """Vectorisation options (geodefect.graph.vectorize.VectorizeParams), in metres."""
    opts = [
        click.option("--vectorize/--no-vectorize", default=None, help="Write roads.gpkg and graph.graphml [default: on]."),
        click.option("--min-spur-m", type=float, default=None, help="Prune dead ends shorter than this [default: 10]."),
        click.option("--min-component-m", type=float, default=None,
                     help="Drop connected pieces with less road than this [default: 15]."),
        click.option("--bridge-gap-m", type=float, default=None, help="Join road ends closer than this [default: 7.2]."),
        click.option("--bridge-collinear-gap-m", type=float, default=None,
                     help="Join ends up to this far apart when collinear [default: 24]."),
        click.option("--bridge-angle-deg", type=float, default=None,
                     help="Collinearity tolerance for long gaps [default: 30]."),
        click.option("--simplify-tolerance-m", type=float, default=None,
                     help="Douglas-Peucker tolerance of the lines [default: 1]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _panorama_options(fn):
    """Options of the stacked panorama pipeline (task panorama_stack; issue 6)."""
    opts = [
        click.option("--review", type=click.IntRange(min=1), default=None,
                     help="Panoramas: write the N least certain images with heatmaps to OUT_DIR/review/ + review.csv."),
        click.option("--roi-masks", type=click.Path(file_okay=False), default=None,
                     help="Panoramas: folder of road-surface masks <stem>.png; heatmaps are zeroed off the road "
                          "[default: ../masks beside the images, if present]."),
        click.option("--roi-model", type=click.Path(dir_okay=False), default=None,
                     help="Panoramas: road-surface segmentation package [default: the one the model was trained with]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.command("infer")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@_sliding_options
@_inspection_options
@_vector_options
@_panorama_options
@overwrite_option
@config_option
@verbosity_options
def infer(model, images, out_dir, overwrite, config_file, verbose, quiet, **options):
    """Run MODEL (a .pt package from `geodefect train`, or its .onnx from `geodefect export`) over IMAGE... and write OUT_DIR.

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
    summary = run_command(
        _dispatch, model, list(images), out_dir, config_file=config_file,
        overrides=drop_none(**options), overwrite=overwrite, verbose=verbose, quiet=quiet,
    )
    _print_summary(summary)


def _dispatch(model, images, out_dir, *, config_file, overrides, overwrite):
    """Read the recipe (clear error for a non-package), pick the task's workflow, run its infer."""
    from geodefect.inference.backends import read_model_recipe
    from geodefect.workflows import workflow_for_task

    recipe = read_model_recipe(model)
    workflow = workflow_for_task(str(recipe.get("task")))
    return workflow.infer(model, images, out_dir, recipe=recipe, config_file=config_file,
                          overrides=overrides, overwrite=overwrite)


def _print_summary(summary) -> None:
    """Workflows return a dict whose ``text`` holds the lines for stdout (area, windows, time, results)."""
    if isinstance(summary, dict) and summary.get("text"):
        click.echo(summary["text"])
