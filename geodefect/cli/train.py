"""``geodefect train CHIPS_DIR -o RUN_DIR``: train a model on a chip folder (any task).

Thin: the options are generated from :class:`~geodefect.training.config.LoopConfig` and every
registered task's ``Options`` (defaults shown per task); only the options the user gave are
passed on, and the task's config rejects the ones it does not know.
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


def _train_options():
    from geodefect.cli.generate import collect, options
    from geodefect.tasks import TASKS
    from geodefect.training.config import LoopConfig

    sources = [(LoopConfig, task.loop_defaults, name) for name, task in TASKS.items()]
    sources += [(task.Options, task.option_defaults_shown(), name) for name, task in TASKS.items()]
    return options(collect(sources))


@click.command("train")
@click.argument("chips_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out-dir", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: model.pt, best.pt, last.pt, metrics.csv, curves.png, samples.png, config.yaml.")
@_train_options()
@click.option("--resume", is_flag=True, help="Continue RUN_DIR exactly from its last.pt.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the full summary (metrics, config, paths) as JSON to this file.")
@overwrite_option
@config_option
@verbosity_options
def train(chips_dir, run_dir, resume, json_out, overwrite, config_file, verbose, quiet, **options):
    """Train a model on CHIPS_DIR (written by `geodefect chip`) into RUN_DIR.

    \b
    Example:
      geodefect train chips -o runs/roads --encoder resnet18 --epochs 10
      geodefect train chips -o runs/roads --resume
      torchrun --nproc-per-node 4 -m geodefect.cli.main train chips -o runs/roads

    The task (roads, crack_segment, ...) is read from CHIPS_DIR/meta.json (raw damage and
    panorama folders are recognised by their layout). Ctrl-C saves last.pt after the current
    step; `--resume` continues exactly and refuses options that would change the result.
    """
    from geodefect.workflows.train import train as train_workflow

    summary = run_command(train_workflow, chips_dir, run_dir, config_file=config_file,
                          overrides=drop_none(**options), resume=resume, overwrite=overwrite,
                          verbose=verbose, quiet=quiet)
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        click.echo(summary.text())
        if json_out:
            summary.write_json(json_out)
