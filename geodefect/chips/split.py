"""Train/validation splits of road chips: spatial blocks (no chip on both sides), whole rasters
(``val_sources``), and the block-size fallback for inputs too small for the default blocks."""

from __future__ import annotations

import logging

from geodefect.chips.config import RoadChipConfig
from geodefect.chips.sources import is_val_source

log = logging.getLogger(__name__)


def choose_split(plans, cfg: RoadChipConfig) -> tuple[int, set]:
    """Split block side and val blocks. When the blocks give no train or no val window (an input
    of one or two blocks), halve the block side, down to the stride, with a warning."""
    block_px = first = cfg.split_block_px or 4 * cfg.stride_px
    if cfg.val_sources:  # whole rasters on the val side
        keys = {(i, int(w.row_off) // block_px, int(w.col_off) // block_px) for i, p in enumerate(plans) for w in p.windows}
        return block_px, {k for k in keys if is_val_source(plans[k[0]], cfg)}
    while True:
        val_blocks, n_train, n_val = try_split(plans, cfg, block_px)
        if (n_train and n_val) or cfg.val_fraction <= 0 or cfg.split_block_px or block_px <= cfg.stride_px:
            break
        block_px = max(cfg.stride_px, block_px // 2)
    if n_train and n_val and block_px != first:
        log.warning("the input is too small for validation blocks of %d px; split by blocks of %d px "
                    "instead (nearer train and val chips: pass --split-block-px or more rasters to choose)",
                    first, block_px)
    elif cfg.val_fraction > 0 and not (n_train and n_val):
        log.warning("split blocks of %d px give %d train and %d val windows: every chip goes to one side; "
                    "pass a smaller --split-block-px or more rasters to get both", block_px, n_train, n_val)
    return block_px, val_blocks


def try_split(plans, cfg: RoadChipConfig, block_px: int) -> tuple[set, int, int]:
    """Val blocks for ``block_px`` and the train / val window counts they give."""
    from geodefect.chips import export as chips

    keys = [(i, int(w.row_off) // block_px, int(w.col_off) // block_px)
            for i, p in enumerate(plans) for w in p.windows]
    val_blocks = chips.choose_val_blocks(keys, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                         road_blocks=blocks_with_roads(plans, set(keys), block_px))
    n_train = n_val = 0
    for i, plan in enumerate(plans):
        splits, _ = chips.assign_splits(plan.windows, block_px=block_px,
                                        val_blocks={(b[1], b[2]) for b in val_blocks if b[0] == i})
        n_train, n_val = n_train + splits.count("train"), n_val + splits.count("val")
    return val_blocks, n_train, n_val


def blocks_with_roads(plans, block_keys: set, block_px: int) -> set:
    """The split blocks (source, block row, block col) that some centerline crosses."""
    from rasterio.windows import Window

    from geodefect.windows import window_bounds

    hits = set()
    for i, r, c in block_keys:
        plan = plans[i]
        if len(plan.lines) == 0:
            continue
        bounds = window_bounds(Window(c * block_px, r * block_px, block_px, block_px), plan.transform)
        if len(plan.lines.sindex.query(_box(bounds), predicate="intersects")):
            hits.add((i, r, c))
    return hits


def _box(bounds):
    from shapely.geometry import box

    return box(*bounds)
