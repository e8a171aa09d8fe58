"""``geodefect train``: any task, one policy for configs, run folders and resuming.

1. the task is read from the data (``meta.json``, or a raw layout a task recognises);
2. options: the loop's (:class:`~geodefect.training.config.LoopConfig`, with the task's
   ``loop_defaults``) and the task's own ``Options``, from defaults <- YAML <- flags; on
   ``--resume`` the run's ``config.yaml`` is the base and result-changing edits are refused;
3. the data are validated (``task.prepare``) and the model built (``tasks.base.build_model_first``:
   weights that would need a download or an option the model refuses) before RUN_DIR is touched;
4. RUN_DIR is created (``--overwrite`` replaces only a folder ``geodefect train`` wrote), the
   resolved config saved, and the task's ``fit`` runs the shared loop.

Under ``torchrun`` every rank resolves and prepares; only rank 0 touches RUN_DIR.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from geodefect.summary import Summary

log = logging.getLogger(__name__)


def train(data_dir, run_dir, *, config_file=None, overrides: dict | None = None, resume: bool = False,
          overwrite: bool = False, callbacks=()) -> Summary:
    """Train the task of ``data_dir`` into ``run_dir``; see the module docstring."""
    from geodefect.errors import GeodefectError
    from geodefect.tasks import task_for_data
    from geodefect.tasks.base import BUILT_KEY, build_model_first
    from geodefect.training.config import resolve_train_config, save_train_config
    from geodefect.training.resume import (
        check_resumable,
        check_run_dir,
        has_progress,
        prepare_run_dir,
        read_saved_config,
    )
    from geodefect.training.state import setup_distributed

    data_dir, run_dir = Path(data_dir), Path(run_dir)
    task = task_for_data(data_dir)
    saved = read_saved_config(run_dir) if resume else None
    cfg = resolve_train_config(task.Options, task.loop_defaults, config_file, overrides, saved=saved)
    cfg = dataclasses.replace(cfg, task=task.complete_options(cfg.task))
    if resume:
        check_resumable(run_dir, nested=task.resume_nested(cfg))
    meta = task.read_meta(data_dir)
    data = task.prepare(data_dir, cfg, meta)
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)  # every rank, before joining: all stop alike
    build_model_first(task, cfg, meta, data, resume=resume)  # a refused model option: nothing written
    if task.resume_nested(cfg):
        data.info.pop(BUILT_KEY, None)  # k-fold builds one model per fold; this one only validated
    ctx = setup_distributed(cfg.loop.device)  # under torchrun: join the group now, so only rank 0 touches RUN_DIR
    created = not resume
    if ctx.is_main:
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
        save_train_config(cfg, run_dir / "config.yaml")
    else:
        logging.getLogger("geodefect").setLevel(logging.WARNING)
    ctx.barrier()
    try:
        return task.fit(data_dir, run_dir, cfg, meta, data, resume=resume, callbacks=callbacks)
    except GeodefectError:  # refused before any state was saved: leave no folder to block the rerun
        if created and ctx.is_main and not has_progress(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
