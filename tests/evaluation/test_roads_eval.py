"""Road metrics on literal arrays and hand-computable graphs."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import LineString

from geodefect.evaluation.apls import add_control_points, apls, lines_to_graph, snap_nodes
from geodefect.evaluation.roads import pixel_scores, relaxed_scores


def test_pixel_scores_on_a_literal_pair():
    truth = np.array([[1, 1, 0, 0],
                      [1, 1, 0, 0],
                      [0, 0, 0, 0]], bool)
    pred = np.array([[0, 1, 1, 0],
                     [0, 1, 1, 0],
                     [0, 0, 0, 0]], bool)
    s = pixel_scores(pred, truth)
    # tp = 2, fp = 2, fn = 2
    assert (s["tp"], s["fp"], s["fn"]) == (2, 2, 2)
    assert s["iou"] == pytest.approx(2 / 6)
    assert s["f1"] == pytest.approx(4 / 8)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.5)


def test_pixel_scores_respect_valid_and_empty_cases():
    truth = np.zeros((3, 3), bool)
    truth[0, 0] = True
    pred = np.zeros((3, 3), bool)
    pred[2, 2] = True
    valid = np.ones((3, 3), bool)
    valid[2, 2] = False  # the only false positive is outside the AOI
    s = pixel_scores(pred, truth, valid=valid)
    assert (s["tp"], s["fp"], s["fn"]) == (0, 0, 1) and s["iou"] == 0.0
    assert pixel_scores(np.zeros((2, 2), bool), truth[:2, :2])["f1"] == 0.0
    assert pixel_scores(np.zeros((2, 2), bool), np.zeros((2, 2), bool))["iou"] == 1.0


def test_relaxed_scores_count_pixels_within_the_buffer_in_metres():
    truth = np.zeros((10, 12), bool)
    truth[2, :] = True  # a horizontal centerline, 12 px
    pred = np.zeros((10, 12), bool)
    pred[4, :6] = True  # 2 rows off: 1.0 m at 0.5 m pixels -> within 1.0 m
    pred[7, 6:] = True  # 5 rows off: 2.5 m -> outside
    s = relaxed_scores(pred, truth, buffer_m=1.0, pixel_size_m=(0.5, 0.5))
    assert s["precision"] == pytest.approx(6 / 12)
    # truth pixels with a prediction within 1 m: columns 0..5 (row 4), and column 6 is
    # 2 rows and 1 column away from (4, 5): sqrt(4 + 1) * 0.5 = 1.118 m -> not within
    assert s["recall"] == pytest.approx(6 / 12)
    assert s["f1"] == pytest.approx(0.5)
    # anisotropic pixels: rows 1 m, columns 0.5 m -> the 2-row offset is 2 m
    assert relaxed_scores(pred, truth, buffer_m=1.0, pixel_size_m=(1.0, 0.5))["precision"] == 0.0


def test_relaxed_scores_empty_prediction():
    truth = np.zeros((4, 4), bool)
    truth[1] = True
    s = relaxed_scores(np.zeros((4, 4), bool), truth, buffer_m=1.0)
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and s["f1"] == 0.0


# ---------------------------------------------------------------------------- APLS


def line(*pts) -> LineString:
    return LineString(pts)


def test_apls_identical_graphs_is_one():
    lines = [line((0, 0), (120, 0)), line((120, 0), (120, 80)), line((120, 0), (200, 30))]
    result = apls(lines_to_graph(lines), lines_to_graph(lines))
    assert result["apls"] == pytest.approx(1.0)
    assert result["pairs_truth"] > 0


def test_apls_removed_edge_hand_value():
    """Truth A(0,0)-B(40,0)-C(80,0); prediction lacks B-C.

    truth -> pred: nodes A, B, C; C is 40 m from the prediction (> 4 m snap): a hole.
      pairs (A,B) 40 vs 40 -> 0; (A,C) and (B,C) missing -> 1 each. C1 = 1 - 2/3 = 1/3.
    pred -> truth: nodes A, B, both on the truth. (A,B) 40 vs 40 -> 0. C2 = 1.
    APLS = 2 / (1/C1 + 1/C2) = 2 / (3 + 1) = 0.5.
    """
    truth = lines_to_graph([line((0, 0), (40, 0)), line((40, 0), (80, 0))])
    pred = lines_to_graph([line((0, 0), (40, 0))])
    result = apls(truth, pred)
    assert result["truth_to_pred"] == pytest.approx(1 / 3)
    assert result["pred_to_truth"] == pytest.approx(1.0)
    assert result["apls"] == pytest.approx(0.5)


def test_apls_detour_hand_value():
    """Truth A(0,0)-B(40,0); prediction A-C(20,15)-B, 25 m + 25 m.

    truth -> pred: (A,B) L=40, L'=50 -> |40-50|/40 = 0.25. C1 = 0.75.
    pred -> truth: C is 15 m off the truth: a hole. (A,C) and (C,B) -> 1; (A,B) L=50, L'=40
      -> 0.2. C2 = 1 - 2.2/3 = 0.26667. APLS = 2 / (1/0.75 + 1/0.26667) = 0.393443.
    """
    truth = lines_to_graph([line((0, 0), (40, 0))])
    pred = lines_to_graph([line((0, 0), (20, 15)), line((20, 15), (40, 0))])
    result = apls(truth, pred)
    assert result["truth_to_pred"] == pytest.approx(0.75)
    assert result["pred_to_truth"] == pytest.approx(1 - 2.2 / 3)
    assert result["apls"] == pytest.approx(2 / (1 / 0.75 + 1 / (1 - 2.2 / 3)))


def test_apls_empty_prediction_is_zero_and_both_empty_is_one():
    truth = lines_to_graph([line((0, 0), (100, 0))])
    assert apls(truth, lines_to_graph([]))["apls"] == 0.0
    assert apls(lines_to_graph([]), lines_to_graph([]))["apls"] == 1.0


def test_apls_is_symmetric_in_its_two_directions():
    a = lines_to_graph([line((0, 0), (100, 0)), line((50, 0), (50, 60))])
    b = lines_to_graph([line((0, 1), (100, 1))])
    ab, ba = apls(a, b), apls(b, a)
    assert ab["truth_to_pred"] == pytest.approx(ba["pred_to_truth"])
    assert ab["apls"] == pytest.approx(ba["apls"])


def test_control_points_every_50_m_and_snapping_within_4_m():
    g = add_control_points(lines_to_graph([line((0, 0), (120, 0))]), spacing_m=50.0)
    xs = sorted(d["x"] for _, d in g.nodes(data=True))
    assert xs == pytest.approx([0, 50, 100, 120])
    assert sum(d["length"] for *_, d in g.edges(data=True)) == pytest.approx(120)
    source = lines_to_graph([line((10, 3), (60, 3)), line((60, 3), (60, 20))])
    snapped, mapping = snap_nodes(source, g, snap_m=4.0)
    # (10, 3) and (60, 3) snap (3 m away); (60, 20) is 20 m away
    assert len(mapping) == 2
    assert snapped.number_of_nodes() == g.number_of_nodes() + 2


def test_lines_are_noded_at_crossings():
    g = lines_to_graph([line((0, 0), (100, 0)), line((50, -50), (50, 50))])
    assert sorted(d for _, d in g.degree()) == [1, 1, 1, 1, 4]
