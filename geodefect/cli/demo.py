"""``geodefect demo``: the whole road pipeline on built-in synthetic scenes."""

from __future__ import annotations

import click

from geodefect.cli.options import config_option, overwrite_option, run_command, verbosity_options


@click.command()
@click.option("-o", "--out-dir", type=click.Path(file_okay=False), default="demo_out", show_default=True,
              help="Folder of all demo outputs (kept between runs; an interrupted demo resumes).")
@click.option("--epochs", type=int, default=None, help="Override the number of training epochs.")
@config_option
@overwrite_option
@verbosity_options
def demo(out_dir, epochs, config_file, overwrite, verbose, quiet):
    """Run chip -> train -> infer (--aoi) -> evaluate on synthetic scenes and print IoU/APLS.

    The model trains on one synthetic scene and is evaluated on another (held out), inside
    its AOI polygon `paris.geojson`. A few minutes on a 2-core CPU.

    Example: geodefect demo --config examples/demo.yaml -o demo_out
    """
    from geodefect.workflows.demo import run_demo

    overrides = {"train": {"epochs": epochs}} if epochs is not None else None
    summary = run_command(run_demo, out_dir, config_file=config_file, overrides=overrides,
                          overwrite=overwrite, verbose=verbose, quiet=quiet)
    click.echo(summary.text())
