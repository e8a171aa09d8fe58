"""``geodefect evaluate``: score predictions against ground truth.

Thin: the inputs given pick an evaluation mode (``geodefect.workflows.evaluate``); the table
goes to stdout (JSON with ``--json``).

Modes:
  roads   --pred roads.gpkg|road_mask.tif --truth CENTERLINES [--aoi FILE]
  inspection_masks   --pred INFER_OUT|MASKS_DIR (--truth MASKS_DIR | --coco FILE [--coco-category C])
  inspection_stage1  --model CLASSIFIER.pt --images DIR --truth MASKS_DIR|labels.csv
"""

from __future__ import annotations

import click

from geodefect.cli.options import (
    config_option,
    overwrite_option,
    run_command,
    verbosity_options,
)


def _inspection_options(fn):
    """Options of the inspection modes (issue 5)."""
    opts = [
        click.option("--coco", type=click.Path(dir_okay=False), default=None,
                     help="Inspection: truth as COCO boxes (rail); adds box recall/precision to the pixel scores."),
        click.option("--coco-category", multiple=True, default=None,
                     help="Inspection: COCO categories counted as defects (repeatable) [default: all]."),
        click.option("--images", type=click.Path(file_okay=False), default=None,
                     help="Inspection stage 1: image folder scored by --model (a crack_classify .pt or .onnx)."),
        click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime", "torch-bf16"]), default=None,
                     help="Inspection stage 1: backend of --model (auto: the file's)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


#: the training options leave-one-domain-out takes (each fold trains a damage_classify model)
LODO_OPTIONS = ("backbone", "losses", "width_mult", "epochs", "batch_size", "lr", "seed", "device", "steps_per_epoch",
                "domains", "classes", "dg_weight", "contrastive_weight")


def _generated_options():
    """Road scoring options (RoadEvalConfig) and the LODO training options, from their dataclasses."""
    from geodefect.cli.generate import collect, options
    from geodefect.evaluation.scene import RoadEvalConfig
    from geodefect.tasks import lodo_task
    from geodefect.training.config import LoopConfig

    damage = lodo_task()
    return options(collect([(RoadEvalConfig, {}, "roads"), (LoopConfig, damage.loop_defaults, "lodo"),
                            (damage.Options, {}, "lodo")], only=("buffer_m", "apls_snap_m", "grid_m", *LODO_OPTIONS)))


def _damage_options(fn):
    """Options of the road-damage modes that are not training options."""
    opts = [
        click.option("--leave-one-domain-out", type=click.Path(file_okay=False), default=None,
                     help="Damage: DATA folder of domains; train on all but one, test on it, for each (Table II/III)."),
        click.option("--model", type=click.Path(dir_okay=False), default=None,
                     help="A model package to score on --data (damage_classify per domain; panorama_stack ROC/AUC)."),
        click.option("--data", type=click.Path(file_okay=False), default=None, help="Labelled data folder for --model."),
        click.option("-o", "--out-dir", type=click.Path(file_okay=False), default=None,
                     help="Output folder of the damage modes (CSV/JSON/Markdown tables, ROC PNG, runs)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.command()
@click.option("--pred", type=click.Path(), default=None,
              help="Prediction: roads.gpkg (or any line file) or road_mask.tif from `geodefect infer`; "
                   "inspection: the infer output folder (or a folder of 0/255 mask PNGs).")
@click.option("--truth", type=click.Path(), default=None,
              help="Ground-truth road centerlines (any vector format, any CRS); inspection: a mask folder "
                   "(> 127 = defect) or, for stage 1, labels.csv (image,has_crack).")
@click.option("--aoi", type=click.Path(dir_okay=False), default=None,
              help="Polygon file (any CRS): only this area is scored.")
@_generated_options()
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics as JSON to this file.")
@click.option("--errors", "errors_out", type=click.Path(dir_okay=False), default=None,
              help="Roads: also write the missed truth roads and the predicted roads with no truth (within "
                   "--buffer-m), with their lengths, to this GeoPackage (styled for QGIS).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="CPU threads for torch (0 = one per core); 1 is faster on a CPU shared with other jobs.")
@_damage_options
@_inspection_options
@config_option
@overwrite_option
@verbosity_options
def evaluate(verbose: bool, quiet: bool, **opts) -> None:
    """Score predictions against ground truth and print a table of metrics.

    Roads: pixel IoU and F1 against the buffered truth, relaxed precision/recall/F1 of the
    centerlines within --buffer-m, and APLS (SpaceNet's path-length similarity).

    Example:

      geodefect evaluate --pred out/roads.gpkg --truth roads.geojson --aoi aoi.geojson --json m.json
      geodefect evaluate --pred out/road_mask.tif --truth roads.geojson --errors errors.gpkg

    Inspection: per-image and overall IoU/F1/precision/recall of masks (plus box recall and
    precision with --coco); stage-1 accuracy and frames per second with --model --images:

      geodefect evaluate --pred out_cracks --truth cracks/masks --json m.json
      geodefect evaluate --pred out_rail --coco rail/boxes.json --coco-category defect
      geodefect evaluate --model cls/best.pt --images cracks/images --truth cracks/masks
    """
    from geodefect.errors import InputError
    from geodefect.workflows.evaluate import evaluate as evaluate_workflow
    from geodefect.workflows.evaluate import select_mode

    try:
        select_mode(opts)
    except InputError as exc:  # no mode matches the flags given: a malformed command line (exit 2)
        raise click.UsageError(str(exc)) from None
    summary = run_command(evaluate_workflow, opts, verbose=verbose, quiet=quiet)
    click.echo(summary.text())
    if opts.get("json_out"):
        click.echo(f"metrics written to {opts['json_out']}", err=True)
    if opts.get("errors_out"):
        click.echo(f"missed / invented roads written to {opts['errors_out']}", err=True)
