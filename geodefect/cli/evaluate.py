"""``geodefect evaluate``: score predictions against ground truth.

Thin: the inputs given pick an evaluation mode (``_MODES``), the mode calls one workflow and
the table goes to stdout (JSON with ``--json``). To add a mode, add its options here, a
``_run_<mode>`` function and a rule in ``_select_mode``.

Modes:
  roads   --pred roads.gpkg|road_mask.tif --truth CENTERLINES [--aoi FILE]
  inspection_masks   --pred INFER_OUT|MASKS_DIR (--truth MASKS_DIR | --coco FILE [--coco-category C])
  inspection_stage1  --model CLASSIFIER.pt --images DIR --truth MASKS_DIR|labels.csv
"""

from __future__ import annotations

import json

import click

from geodefect.cli.options import (
    config_option,
    drop_none,
    overwrite_option,
    run_command,
    verbosity_options,
)


def _select_mode(given: dict) -> str:
    """The evaluation mode for the options the user gave (a UsageError lists the modes)."""
    if given.get("pred") and (given.get("coco") or _is_dir(given["pred"])):
        return "inspection_masks"
    if given.get("model") and given.get("images"):
        return "inspection_stage1"
    if given.get("pred") and given.get("truth"):
        return "roads"
    if given.get("leave_one_domain_out"):
        return "damage_lodo"
    if given.get("model") and given.get("data"):
        return "model_on_data"
    raise click.UsageError(
        "nothing to evaluate: give --pred PRED --truth CENTERLINES (roads: PRED is roads.gpkg or road_mask.tif)"
    )


def _run_roads(opts: dict) -> None:
    from geodefect.workflows.road_evaluate import evaluate as evaluate_roads
    from geodefect.workflows.road_evaluate import format_road_metrics

    overrides = drop_none(buffer_m=opts["buffer_m"], apls_snap_m=opts["apls_snap_m"], grid_m=opts["grid_m"])
    result = evaluate_roads(
        opts["pred"], opts["truth"], aoi=opts["aoi"], json_out=opts["json_out"],
        config_file=opts["config_file"], overrides=overrides, overwrite=opts["overwrite"],
    )
    click.echo(format_road_metrics(result))
    if opts["json_out"]:
        click.echo(f"metrics written to {opts['json_out']}", err=True)


def _is_dir(path) -> bool:
    from pathlib import Path

    return Path(path).is_dir()


def _run_inspection_masks(opts: dict) -> None:
    """Crack / rail masks from `geodefect infer` against truth masks or COCO boxes (issue 5)."""
    from geodefect.workflows.inspection import evaluate as evaluate_inspection

    result = evaluate_inspection(opts["pred"], opts["truth"], coco=opts["coco"],
                                 coco_category=list(opts["coco_category"] or []) or None, json_path=opts["json_out"])
    click.echo(result.text())


def _run_inspection_stage1(opts: dict) -> None:
    """Stage-1 crack classifier: accuracy and frames per second on an image folder (issue 5)."""
    from geodefect.workflows.inspection import evaluate as evaluate_inspection

    result = evaluate_inspection(model=opts["model"], images=opts["images"], truth=opts["truth"],
                                 json_path=opts["json_out"], device=opts["device"] or "auto",
                                 backend=opts["backend"] or "auto")
    click.echo(result.text())


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
                     help="Inspection stage 1: backend of --model [default: the file's]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


_LODO_KEYS = ("backbone", "losses", "width_mult", "epochs", "batch_size", "lr", "seed", "device", "steps_per_epoch",
              "domains", "classes", "dg_weight", "contrastive_weight")


def _run_damage_lodo(opts: dict) -> None:
    """Leave-one-domain-out training + evaluation (issue 6): Table II/III as Markdown on stdout."""
    from geodefect.workflows.damage_lodo import leave_one_domain_out

    _require_out(opts, "--leave-one-domain-out")
    result = leave_one_domain_out(opts["leave_one_domain_out"], opts["out_dir"], config_file=opts["config_file"],
                                  overrides=drop_none(**{k: opts[k] for k in _LODO_KEYS}), overwrite=opts["overwrite"])
    click.echo(result["markdown"])


def _run_model_on_data(opts: dict) -> None:
    """A model package on a labelled folder, by the package's task (damage_classify, panorama_stack, ...)."""
    from geodefect.models.checkpoint import read_recipe
    from geodefect.workflows import workflow_for_task

    _require_out(opts, "--model/--data")
    task = str(read_recipe(opts["model"]).get("task"))
    if task not in ("damage_classify", "panorama_stack"):
        raise click.UsageError(f"--model/--data scores damage_classify and panorama_stack packages; {opts['model']!r} is {task!r}")
    result = workflow_for_task(task).evaluate(opts["model"], opts["data"], opts["out_dir"], config_file=opts["config_file"],
                                              overrides=drop_none(domains=opts["domains"]), overwrite=opts["overwrite"])
    click.echo(result.get("text") or json.dumps(result.get("metrics", result), indent=2, default=str))


def _require_out(opts: dict, mode: str) -> None:
    if not opts.get("out_dir"):
        raise click.UsageError(f"{mode} needs -o/--out-dir for the tables and plots")


def _damage_options(fn):
    """Options of the road-damage modes (issue 6)."""
    opts = [
        click.option("--leave-one-domain-out", type=click.Path(file_okay=False), default=None,
                     help="Damage: DATA folder of domains; train on all but one, test on it, for each (Table II/III)."),
        click.option("--model", type=click.Path(dir_okay=False), default=None,
                     help="A model package to score on --data (damage_classify per domain; panorama_stack ROC/AUC)."),
        click.option("--data", type=click.Path(file_okay=False), default=None, help="Labelled data folder for --model."),
        click.option("-o", "--out-dir", type=click.Path(file_okay=False), default=None,
                     help="Output folder of the damage modes (CSV/JSON/Markdown tables, ROC PNG, runs)."),
        click.option("--backbone", type=click.Choice(["resnet18", "vgg16", "mobilenet_v2", "inception_v3"]), default=None,
                     help="LODO: classifier backbone [default: resnet18]."),
        click.option("--losses", default=None, help="LODO: ce | ce,ct | ce,dg | ce,ct,dg [default: ce]."),
        click.option("--width-mult", type=float, default=None, help="LODO: channel width of vgg16/mobilenet_v2."),
        click.option("--epochs", type=int, default=None, help="LODO: epochs per fold [default: 10]."),
        click.option("--batch-size", type=int, default=None, help="LODO: batch size [default: 32]."),
        click.option("--lr", type=float, default=None, help="LODO: peak learning rate [default: 1e-3]."),
        click.option("--seed", type=int, default=None, help="LODO: seed [default: 0]."),
        click.option("--device", default=None, help="LODO: auto | cpu | cuda."),
        click.option("--steps-per-epoch", type=int, default=None, help="LODO: cap on steps per epoch."),
        click.option("--domains", default=None, help="Damage: comma-separated domains [default: all sub-folders]."),
        click.option("--classes", default=None, help="LODO: comma-separated classes [default: D00,D10,D20,D40 for RDD]."),
        click.option("--dg-weight", type=float, default=None, help="LODO: DG gradient weight gamma [default: 0.7]."),
        click.option("--contrastive-weight", type=float, default=None, help="LODO: contrastive weight lambda [default: 1]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


_MODES = {"roads": _run_roads, "damage_lodo": _run_damage_lodo, "model_on_data": _run_model_on_data,
          "inspection_masks": _run_inspection_masks, "inspection_stage1": _run_inspection_stage1}


@click.command()
@click.option("--pred", type=click.Path(), default=None,
              help="Prediction: roads.gpkg (or any line file) or road_mask.tif from `geodefect infer`; "
                   "inspection: the infer output folder (or a folder of 0/255 mask PNGs).")
@click.option("--truth", type=click.Path(), default=None,
              help="Ground-truth road centerlines (any vector format, any CRS); inspection: a mask folder "
                   "(> 127 = defect) or, for stage 1, labels.csv (image,has_crack).")
@click.option("--aoi", type=click.Path(dir_okay=False), default=None,
              help="Polygon file (any CRS): only this area is scored.")
@click.option("--buffer-m", type=float, default=None,
              help="Truth buffer half-width and relaxed-metric tolerance, metres [default: 2].")
@click.option("--apls-snap-m", type=float, default=None, help="APLS node snapping distance, metres [default: 4].")
@click.option("--grid-m", type=float, default=None,
              help="Pixel size of the scoring grid when --pred is a vector file, metres [default: 0.5].")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics as JSON to this file.")
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

    Inspection: per-image and overall IoU/F1/precision/recall of masks (plus box recall and
    precision with --coco); stage-1 accuracy and frames per second with --model --images:

      geodefect evaluate --pred out_cracks --truth cracks/masks --json m.json
      geodefect evaluate --pred out_rail --coco rail/boxes.json --coco-category defect
      geodefect evaluate --model cls/best.pt --images cracks/images --truth cracks/masks
    """
    mode = _select_mode(opts)
    run_command(_MODES[mode], opts, verbose=verbose, quiet=quiet)
