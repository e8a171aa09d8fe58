"""``geodefect evaluate``: score predictions against ground truth.

Thin: the inputs given pick an evaluation mode (``_MODES``), the mode calls one workflow and
the table goes to stdout (JSON with ``--json``). To add a mode, add its options here, a
``_run_<mode>`` function and a rule in ``_select_mode``.

Modes:
  roads   --pred roads.gpkg|road_mask.tif --truth CENTERLINES [--aoi FILE]
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


def _select_mode(given: dict) -> str:
    """The evaluation mode for the options the user gave (a UsageError lists the modes)."""
    if given.get("pred") and given.get("truth"):
        return "roads"
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


_MODES = {"roads": _run_roads}


@click.command()
@click.option("--pred", type=click.Path(dir_okay=False), default=None,
              help="Prediction: roads.gpkg (or any line file) or road_mask.tif from `geodefect infer`.")
@click.option("--truth", type=click.Path(dir_okay=False), default=None,
              help="Ground-truth road centerlines (any vector format, any CRS).")
@click.option("--aoi", type=click.Path(dir_okay=False), default=None,
              help="Polygon file (any CRS): only this area is scored.")
@click.option("--buffer-m", type=float, default=None,
              help="Truth buffer half-width and relaxed-metric tolerance, metres [default: 2].")
@click.option("--apls-snap-m", type=float, default=None, help="APLS node snapping distance, metres [default: 4].")
@click.option("--grid-m", type=float, default=None,
              help="Pixel size of the scoring grid when --pred is a vector file, metres [default: 0.5].")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics as JSON to this file.")
@config_option
@overwrite_option
@verbosity_options
def evaluate(verbose: bool, quiet: bool, **opts) -> None:
    """Score predictions against ground truth and print a table of metrics.

    Roads: pixel IoU and F1 against the buffered truth, relaxed precision/recall/F1 of the
    centerlines within --buffer-m, and APLS (SpaceNet's path-length similarity).

    Example:

      geodefect evaluate --pred out/roads.gpkg --truth roads.geojson --aoi aoi.geojson --json m.json
    """
    mode = _select_mode(opts)
    run_command(_MODES[mode], opts, verbose=verbose, quiet=quiet)
