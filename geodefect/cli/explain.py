"""``geodefect explain``: Score-CAM heatmaps of a crack or rail model for one image."""

from __future__ import annotations

import click

from geodefect.cli.options import overwrite_option, run_command, verbosity_options


@click.command("explain")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--layer", required=True,
              help="Module name of the layer to explain, e.g. features.denseblock4 (DenseNet), "
                   "trunk.blocks.6 (EfficientNet-Lite classifier) or net.encoder.layer4 (DeepLabV3+); a wrong "
                   "name lists the valid ones.")
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--target", type=int, default=1, show_default=True, help="Class explained (1 = crack / defect).")
@click.option("--max-maps", type=click.IntRange(min=0), default=128, show_default=True,
              help="Score only the N most active channels of the layer (0 = all, as the paper; slower).")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU threads for torch (0 = one per core); 1 is faster on a CPU shared with other jobs.")
@overwrite_option
@verbosity_options
def explain(model, image, layer, out_dir, target, max_maps, threads, overwrite, verbose, quiet):
    """Score-CAM heatmaps (Wang, 2020) of MODEL's LAYER for IMAGE, written as PNGs in OUT_DIR.

    \b
    Example:
      geodefect explain runs/cls/best.pt photo.jpg --layer features.denseblock4 -o explain

    Writes <image>_<layer>_scorecam.png (jet heatmap over the image) and
    <image>_<layer>_heat.png (the map, 0..255). Classifiers explain the class score;
    segmenters the mean defect logit over the pixels they predict as defect (the whole
    image if none).
    """
    from geodefect.workflows.explain import explain as explain_workflow

    summary = run_command(explain_workflow, model, image, out_dir, layer=layer, target=target, max_maps=max_maps,
                          threads=threads, overwrite=overwrite, verbose=verbose, quiet=quiet)
    click.echo(summary.text())
