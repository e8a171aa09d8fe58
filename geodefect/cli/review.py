"""``geodefect review``: human-in-the-loop label import (export is ``geodefect infer --review N``)."""

from __future__ import annotations

import click

from geodefect.cli.options import run_command, verbosity_options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def review() -> None:
    """Review uncertain predictions and feed the labels back into a training set."""


@review.command("import")
@click.argument("review_csv", type=click.Path(dir_okay=False))
@click.option("--into", "dataset", required=True, type=click.Path(file_okay=False),
              help="Panorama dataset folder (images/ + labels.csv) to add the reviewed labels to.")
@verbosity_options
def import_(review_csv, dataset, verbose, quiet) -> None:
    """Add the labels filled in REVIEW_CSV (0/1; empty = not reviewed) to a dataset.

    \b
    Example:
      geodefect infer stack.pt panos/*.jpg -o scored --review 10
      (fill the label column of scored/review/review.csv)
      geodefect review import scored/review/review.csv --into panos_train

    Images are copied into DATASET/images/; DATASET/labels.csv is rewritten atomically
    (a label given again replaces the old one).
    """
    from geodefect.workflows.review import import_labels

    summary = run_command(import_labels, review_csv, dataset, verbose=verbose, quiet=quiet)
    click.echo(summary.text())
