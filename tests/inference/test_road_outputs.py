"""NpyRowFile: row-segment writes land where a memory map would put them; SparseBins: the
orientation bins of road pixels for the vectoriser."""

from __future__ import annotations

import numpy as np
import pytest

from geodefect.inference.road_outputs import NpyRowFile, SparseBins, SparseBinsFile


def test_row_segments_and_whole_rows_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    expected = np.zeros((7, 9, 3), np.float16)
    f = NpyRowFile(tmp_path / "a.npy", (7, 9), tail=(3,), dtype=np.float16)
    block = rng.random((3, 4, 3)).astype(np.float16)
    f.write(2, 5, block)
    expected[2:5, 5:9] = block
    rows = rng.random((2, 9, 3)).astype(np.float16)
    f.write(5, 0, rows)
    expected[5:7] = rows
    np.testing.assert_array_equal(f.open_read(), expected)
    f.close()
    flat = NpyRowFile(tmp_path / "b.npy", (4, 5), dtype=np.float32)
    flat.write(1, 1, np.full((2, 3), np.nan, np.float32))
    got = flat.open_read()
    assert np.isnan(got[1:3, 1:4]).all() and (got[0] == 0).all() and got.shape == (4, 5)
    flat.close()


def _sparse_from_dense(tmp_path, dense_hwk: np.ndarray, where: np.ndarray, patches) -> SparseBins:
    """Write the bins of ``where``'s pixels patch by patch, as RoadBlockWriter does."""
    f = SparseBinsFile(tmp_path / "orientation", where.shape, n_bins=dense_hwk.shape[-1])
    for r0, c0, h, w in patches:
        sub = where[r0:r0 + h, c0:c0 + w]
        rows, cols = np.nonzero(sub)
        f.write(r0, c0, sub.shape, rows, cols, dense_hwk[r0:r0 + h, c0:c0 + w][rows, cols])
    bins = f.open_read()
    f.close()
    return bins


def test_sparse_bins_read_back_what_was_written_and_zero_elsewhere(tmp_path):
    rng = np.random.default_rng(1)
    dense = rng.random((40, 50, 18)).astype(np.float16)
    where = rng.random((40, 50)) < 0.2
    # blocks of a strip, then the next strip: any order of rectangles
    bins = _sparse_from_dense(tmp_path, dense, where, [(0, 0, 16, 30), (16, 0, 24, 30), (0, 30, 40, 20)])
    assert bins.shape == (18, 40, 50) and bins.index.dtype == np.int32 and bins.values.shape == (where.sum(), 18)
    rows, cols = np.mgrid[0:40, 0:50].reshape(2, -1)
    got = bins[:, rows, cols]
    expected = np.where(where[rows, cols], np.moveaxis(dense[rows, cols], -1, 0), 0)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(TypeError, match=r"bins\[:, rows, cols\]"):
        bins[0]
    (tmp_path / "e").mkdir()
    empty = _sparse_from_dense(tmp_path / "e", dense, np.zeros((40, 50), bool), [(0, 0, 40, 50)])
    assert not empty[:, rows, cols].any() and empty.shape == (18, 40, 50)


@pytest.mark.parametrize(("angle_deg", "bridged"), [(0.0, True), (90.0, False)])
def test_the_vectoriser_bridges_the_same_with_bins_kept_on_road_pixels_only(tmp_path, angle_deg, bridged):
    """Two collinear road pieces 15 m apart: whether they are joined follows the bins, which the
    vectoriser reads on the skeleton only — bins stored on road pixels alone decide the same."""
    from affine import Affine

    from geodefect.graph.vectorize import VectorizeParams, vectorize_road_mask

    mask = np.zeros((60, 200), bool)
    mask[27:34, 5:90] = mask[27:34, 105:195] = True
    dense = np.zeros((60, 200, 18), np.float32)
    dense[..., int(angle_deg // 20)] = 0.9
    dense += 0.1 / 18
    sparse = _sparse_from_dense(tmp_path, dense.astype(np.float16), mask, [(0, 0, 30, 200), (30, 0, 30, 200)])
    args = dict(crs="EPSG:32631", params=VectorizeParams(simplify_tolerance_m=0.0), bin_deg=20)
    transform = Affine(1.0, 0, 500_000, 0, -1.0, 4_000_000)
    nets = [vectorize_road_mask(mask, transform, orientation=o, **args) for o in (np.moveaxis(dense, -1, 0), sparse)]
    assert [n.stats["gaps_bridged"] for n in nets] == [int(bridged)] * 2
    assert [n.n_edges for n in nets] == [1 if bridged else 2] * 2
