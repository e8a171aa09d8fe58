"""NpyRowFile: row-segment writes land where a memory map would put them."""

from __future__ import annotations

import numpy as np

from geodefect.inference.road_outputs import NpyRowFile


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
