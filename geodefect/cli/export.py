"""``geodefect export``: a model package -> ONNX (fp32, or int8 behind a quality gate)."""

from __future__ import annotations

import click

from geodefect.cli.options import overwrite_option, run_command, verbosity_options


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Output .onnx (one file, weights embedded).")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="int8 static quantization (ONNX Runtime), kept only if it passes the quality gate.")
@click.option("--calibration", type=click.Path(file_okay=False), default=None,
              help="Chip folder (geodefect chip) of the model's task: its train chips calibrate int8.")
@click.option("--validation", type=click.Path(file_okay=False), default=None,
              help="Chip folder whose val chips score fp32 and int8 [default: --calibration].")
@click.option("--max-metric-drop", type=float, default=0.01, show_default=True,
              help="Refuse int8 when the validation IoU / accuracy drops by more than this.")
@click.option("--calibration-chips", type=click.IntRange(min=1), default=64, show_default=True,
              help="Calibration chips to use.")
@click.option("--validation-chips", type=click.IntRange(min=1), default=None,
              help="Cap on validation chips scored [default: all].")
@overwrite_option
@verbosity_options
def export(model, out_path, quantize, calibration, validation, max_metric_drop, calibration_chips,
           validation_chips, overwrite, verbose, quiet):
    """Export MODEL (a .pt package, or a shipped model's name) to ONNX for `geodefect infer`, ONNX
    Runtime and QGIS (Deepness).

    \b
    Examples:
      geodefect export runs/roads/best.pt -o roads.onnx
      geodefect export spacenet3-roads -o spacenet3-roads.onnx
      geodefect export runs/roads/best.pt -o roads_int8.onnx --quantize int8 --calibration chips/

    The graph takes band values / 255 (normalisation inside), gives named probability
    outputs, and carries the full recipe in its metadata: `geodefect infer roads.onnx scene.tif`
    runs the same pipeline as the .pt. Segmenters also get Deepness's metadata (tile size,
    overlap, class names, resolution). With --quantize int8, exit 1 and nothing written
    when int8 loses more than --max-metric-drop on the validation chips.
    """
    from geodefect.workflows.export import export as run_export

    summary = run_command(run_export, model, out_path, quantize=quantize, calibration=calibration,
                          validation=validation, max_metric_drop=max_metric_drop,
                          calibration_chips=calibration_chips, validation_chips=validation_chips,
                          overwrite=overwrite, verbose=verbose, quiet=quiet)
    click.echo(summary["text"])
