"""Block.crop / GatedSums.crop: a block work unit keeps its core of a stitched block, values unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.sliding.blocks import Block
from geodefect.sliding.gated import GatedSums


def _gated(dense_form: bool, rng) -> tuple[GatedSums, np.ndarray, np.ndarray]:
    mask = rng.random((12, 10)) > 0.6
    dense = rng.random((12, 10, 3)).astype(np.float32)
    if dense_form:
        return GatedSums(mask, dense=dense), mask, dense
    rows, cols = np.nonzero(mask)
    return GatedSums(mask, rows=rows, cols=cols, sums=dense[rows, cols]), mask, dense


@pytest.mark.parametrize("dense_form", [True, False])
def test_gated_crop_keeps_the_pixels_inside(dense_form):
    g, mask, dense = _gated(dense_form, np.random.default_rng(1))
    c = g.crop(slice(3, 9), slice(2, 7))
    sub = mask[3:9, 2:7]
    rows, cols = np.nonzero(sub)
    np.testing.assert_array_equal(c.mask, sub)
    np.testing.assert_array_equal(c.rows, rows)
    np.testing.assert_array_equal(c.cols, cols)
    np.testing.assert_array_equal(c.sums, dense[3:9, 2:7][rows, cols])


def test_block_crop_gives_the_same_outputs_and_argmax():
    rng = np.random.default_rng(2)
    g, mask, dense = _gated(False, rng)
    sums = {"road": np.moveaxis(rng.random((12, 10, 1)).astype(np.float32), -1, 0)}
    weight = rng.random((12, 10)).astype(np.float32) + 0.5
    block = Block(row_off=100, col_off=50, sums=sums, weight=weight, gated={"orientation": g})
    part = block.crop(103, 52, 6, 100)  # rows 103..109, cols 52.. (clipped to the block)
    assert (part.row_off, part.col_off, part.height, part.width) == (103, 52, 6, 8)
    np.testing.assert_array_equal(part.outputs["road"], block.outputs["road"][:, 3:9, 2:])
    np.testing.assert_array_equal(part.outputs["orientation"], block.outputs["orientation"][:, 3:9, 2:])
    np.testing.assert_array_equal(part.argmax("orientation", first=1), block.argmax("orientation", first=1)[3:9, 2:])
    assert block.crop(0, 0, 100, 100) is None  # above the block
