"""Metrics equal scikit-learn and hand-computed values; empty-mask conventions."""

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from medtl.tasks.metrics import classification_metrics, segmentation_case_metrics


def test_binary_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p1 = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    probs = np.stack([1 - p1, p1], 1)
    out = classification_metrics(labels, probs)
    predicted = (p1 >= 0.5).astype(int)
    tn, fp, fn, tp = sk.confusion_matrix(labels, predicted).ravel()
    assert out["auc"] == pytest.approx(sk.roc_auc_score(labels, p1), abs=1e-6)
    assert out["pr_auc"] == pytest.approx(sk.average_precision_score(labels, p1), abs=1e-6)
    assert out["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert out["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert out["specificity"] == pytest.approx(tn / (tn + fp))
    assert out["f1"] == pytest.approx(sk.f1_score(labels, predicted))


def test_multiclass_auc_is_macro_one_vs_rest():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 3)) + np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    out = classification_metrics(labels, probs)
    assert out["auc"] == pytest.approx(sk.roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=1e-6)
    assert out["f1"] == pytest.approx(sk.f1_score(labels, probs.argmax(1), average="macro"), abs=1e-6)


def test_auc_undefined_with_one_class():
    assert math.isnan(classification_metrics(np.zeros(4, int), np.full((4, 2), 0.5))["auc"])


def test_segmentation_metrics_hand_computed():
    truth = np.zeros((20, 20), int)
    truth[5:10, 5:10] = 1  # 25 px
    pred = np.zeros_like(truth)
    pred[5:10, 7:12] = 1  # shifted 2 columns: overlap 15
    out = segmentation_case_metrics(pred, truth, 2, spacing=(1.0, 0.5))
    assert out["dice"] == pytest.approx(2 * 15 / 50)
    assert out["iou"] == pytest.approx(15 / 35)
    assert out["hd95"] == pytest.approx(2 * 0.5)  # 2 columns of 0.5 mm
    same = segmentation_case_metrics(truth, truth, 2)
    assert same["dice"] == 1 and same["iou"] == 1 and same["hd95"] == 0


def test_empty_mask_conventions():
    empty = np.zeros((8, 8), int)
    full = empty.copy()
    full[2:4, 2:4] = 1
    both = segmentation_case_metrics(empty, empty, 2)
    assert (both["dice"], both["iou"], both["hd95"]) == (1.0, 1.0, 0.0)
    missed = segmentation_case_metrics(empty, full, 2)
    assert missed["dice"] == 0 and missed["iou"] == 0 and math.isnan(missed["hd95"])



def test_brier_and_ece_match_their_definitions():
    from sklearn.metrics import brier_score_loss

    from medtl.tasks.metrics import brier_score, expected_calibration_error

    labels = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    p1 = np.array([0.05, 0.15, 0.95, 0.85, 0.55, 0.45, 0.65, 0.35])
    probs = np.stack([1 - p1, p1], 1)
    assert brier_score(labels, probs) == pytest.approx(brier_score_loss(labels, p1))
    # bins [0.0-0.1): 0.05 -> 0; [0.1-0.2): 0.15 -> 0; [0.3-0.4): 0.35 -> 0; [0.4-0.5): 0.45 -> 0;
    # [0.5-0.6): 0.55 -> 1; [0.6-0.7): 0.65 -> 1; [0.8-0.9): 0.85 -> 1; [0.9-1.0]: 0.95 -> 1
    expected = (0.05 + 0.15 + 0.35 + 0.45 + 0.45 + 0.35 + 0.15 + 0.05) / 8
    assert expected_calibration_error(labels, probs) == pytest.approx(expected)
    three = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    assert brier_score(np.array([0, 2]), three) == pytest.approx(((0.09 + 0.04 + 0.01) + (0.01 + 0.64 + 0.81)) / 2)


def _scores(rng, n, kind):
    if kind == "ties":  # a few distinct values: many tied thresholds
        return rng.integers(0, 5, n) / 4
    if kind == "extremes":  # scores at exactly 0 and 1 as well
        return np.clip(rng.normal(0.5, 0.6, n), 0, 1)
    return rng.random(n)


@pytest.mark.parametrize("kind", ["continuous", "ties", "extremes"])
@pytest.mark.parametrize("n", [2, 7, 300, 5000])
def test_auc_and_average_precision_from_one_curve_equal_torchmetrics_to_the_bit(kind, n):
    import torch
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    from medtl.tasks.metrics import binary_auroc_and_average_precision

    rng = np.random.default_rng(n)
    for _ in range(20):
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        score = torch.as_tensor(_scores(rng, n, kind), dtype=torch.float32)
        target = torch.as_tensor(labels, dtype=torch.long)
        auc, ap = binary_auroc_and_average_precision(score, target)
        assert auc == binary_auroc(score, target).item()
        assert ap == binary_average_precision(score, target).item()


@pytest.mark.parametrize("classes", [2, 3])
def test_calibration_bins_equal_a_selection_of_each_bin_to_the_bit(classes):
    from medtl.tasks.metrics import calibration_bins

    rng = np.random.default_rng(classes)
    for n in (1, 10, 999, 5000):
        raw = rng.random((n, classes)) ** 3
        probs = raw / raw.sum(1, keepdims=True)
        probs[: n // 10, 1] = 1.0 if classes == 2 else probs[: n // 10, 1]  # scores at the top bin's edge
        probs[: n // 10, 0] = 0.0 if classes == 2 else probs[: n // 10, 0]
        labels = rng.integers(0, classes, n)
        score = probs[:, 1] if classes == 2 else probs.max(1)
        hit = labels == 1 if classes == 2 else probs.argmax(1) == labels
        index = np.minimum((score * 10).astype(int), 9)
        expected = [(score[index == b].mean(), hit[index == b].mean(), int((index == b).sum()))
                    for b in range(10) if (index == b).any()]
        got = calibration_bins(labels, probs)
        assert [tuple(column[i] for column in got) for i in range(len(got[0]))] == expected
