"""Missed and invented road pieces on hand-made lines (metres)."""

from __future__ import annotations

import pytest
from shapely.geometry import LineString

from geodefect.evaluation.errors import road_errors


def test_missed_and_invented_pieces_with_their_lengths():
    truth = [LineString([(0, 0), (100, 0)]), LineString([(50, 0), (50, 60)])]
    pred = [LineString([(0, 1), (100, 1)]), LineString([(0, 40), (30, 40)])]  # finds the first, invents one
    errors = road_errors(truth, pred, buffer_m=2.0, crs="EPSG:32631")
    assert list(errors["error"]) == ["false_negative", "false_positive"]
    assert errors["length_m"].tolist() == pytest.approx([60 - 3, 30])  # the stem beyond 3 m of the road (1 m off + 2 m)
    assert errors.crs.to_epsg() == 32631


def test_empty_prediction_misses_everything_and_short_pieces_are_dropped():
    truth = [LineString([(0, 0), (100, 0)])]
    errors = road_errors(truth, [], buffer_m=2.0)
    assert errors["error"].tolist() == ["false_negative"] and errors["length_m"].iloc[0] == pytest.approx(100)
    # a prediction ending 3 m past the truth's end leaves a 1 m piece outside the 2 m buffer: dropped
    assert len(road_errors(truth, [LineString([(0, 0), (103, 0)])], buffer_m=2.0)) == 0
