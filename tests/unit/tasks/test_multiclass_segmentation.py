"""Multi-class segmentation: a class absent from a case's truth never decides that case's figures."""

import math

import numpy as np
import pytest

from medtl.evaluate.summary import class_breakdown
from medtl.tasks.metrics import segmentation_case_metrics


def _case():
    truth = np.zeros((24, 24), int)
    truth[4:12, 4:12] = 1  # class 1 present, class 2 absent
    pred = np.zeros_like(truth)
    pred[5:12, 6:12] = 1
    return pred, truth


@pytest.mark.parametrize("classes", [3, 4])
def test_an_absent_class_predicted_nowhere_leaves_the_case_dice_at_its_present_classes(classes):
    pred, truth = _case()
    binary = segmentation_case_metrics(pred, truth, 2)
    out = segmentation_case_metrics(pred, truth, classes)
    for metric in ("dice", "iou", "hd95"):
        assert out[metric] == pytest.approx(binary[metric])
    assert out["dice_1"] == pytest.approx(binary["dice"])
    for c in range(2, classes):
        assert math.isnan(out[f"dice_{c}"]) and math.isnan(out[f"iou_{c}"]) and math.isnan(out[f"hd95_{c}"])
        assert out[f"stray_{c}"] == 0.0


def test_stray_pixels_of_an_absent_class_are_a_detection_error_not_a_dice_of_zero():
    pred, truth = _case()
    clean = segmentation_case_metrics(pred, truth, 3)
    pred[20:21, 18:23] = 2  # five stray pixels of class 2 in the background
    out = segmentation_case_metrics(pred, truth, 3)
    assert out["dice"] == pytest.approx(clean["dice"]) and out["iou"] == pytest.approx(clean["iou"])
    assert out["stray_2"] == 1.0 and math.isnan(out["stray_1"])
    assert out["pred_empty"] == 0.0


def test_a_case_whose_truth_is_empty_keeps_the_empty_mask_convention_in_multi_class():
    empty = np.zeros((8, 8), int)
    both = segmentation_case_metrics(empty, empty, 3)
    assert (both["dice"], both["iou"], both["hd95"]) == (1.0, 1.0, 0.0)
    stray = empty.copy()
    stray[1, 1] = 2
    out = segmentation_case_metrics(stray, empty, 3)
    assert out["dice"] == 0.0 and out["stray_2"] == 1.0 and out["stray_1"] == 0.0


def _rows():
    rows = []
    rng = np.random.default_rng(0)
    for i in range(12):
        truth = np.zeros((16, 16), int)
        truth[2:8, 2:8] = 1
        if i % 3 == 0:
            truth[10:14, 10:14] = 2  # class 2 in 4 of 12 cases
        pred = truth.copy()
        pred[2:8, 2 + i % 3:8] = 0 if i % 2 else 1
        if i % 4 == 1:
            pred[0, 10:13] = 2  # a stray class 2 in some cases without it
        metrics = segmentation_case_metrics(pred, truth, 3)
        rows.append({"case_id": f"c{i}", "patient_key": f"p{i}", **metrics, "seed": rng.random()})
    return rows


def test_per_class_metrics_average_only_the_cases_that_have_the_class_and_count_them():
    rows = _rows()
    per_class = class_breakdown("segmentation", rows, [], n_boot=50, seed=0)
    assert set(per_class) == {"1", "2"}
    with_2 = [r for r in rows if not math.isnan(r["dice_2"])]
    assert per_class["2"]["n_cases"] == len(with_2) == 4
    assert per_class["1"]["n_cases"] == 12
    assert per_class["2"]["dice"]["value"] == pytest.approx(np.mean([r["dice_2"] for r in with_2]))
    absent = [r for r in rows if math.isnan(r["dice_2"])]
    assert per_class["2"]["n_cases_without"] == len(absent) == 8
    assert per_class["2"]["stray_rate"]["value"] == pytest.approx(np.mean([r["stray_2"] for r in absent]))
    lo, hi = per_class["2"]["dice"]["ci95"]
    assert lo <= per_class["2"]["dice"]["value"] <= hi


def test_binary_segmentation_has_no_class_breakdown():
    truth = np.zeros((8, 8), int)
    truth[2:5, 2:5] = 1
    rows = [{"case_id": "a", "patient_key": "p", **segmentation_case_metrics(truth, truth, 2)}]
    assert class_breakdown("segmentation", rows, [], n_boot=10, seed=0) == {}
