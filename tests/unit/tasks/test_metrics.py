"""Metrics against scikit-learn / hand-computed values; bootstrap and paired-test behaviour."""

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from medtl.tasks.metrics import classification_metrics, segmentation_case_metrics
from medtl.evaluate.stats import paired_patient_bootstrap, patient_bootstrap_ci


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


def test_patient_bootstrap_ci_brackets_estimate_and_widens_with_clustering():
    rng = np.random.default_rng(2)
    values = rng.normal(0.7, 0.1, 100)
    mean = lambda idx: float(values[idx].mean())  # noqa: E731
    independent = patient_bootstrap_ci(mean, [str(i) for i in range(100)], n=500)
    clustered = patient_bootstrap_ci(mean, [str(i // 10) for i in range(100)], n=500)
    assert independent[0] < values.mean() < independent[1]
    assert (clustered[1] - clustered[0]) >= 0.5 * (independent[1] - independent[0])


def test_paired_bootstrap_identical_and_clearly_different_arms():
    rng = np.random.default_rng(3)
    a = rng.random(80)
    patients = [str(i // 2) for i in range(80)]
    same = paired_patient_bootstrap(lambda i: a[i].mean(), lambda i: a[i].mean(), patients, n=300)
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0
    better = paired_patient_bootstrap(lambda i: (a[i] + 0.2).mean(), lambda i: a[i].mean(), patients, n=300)
    assert better["mean_diff"] == pytest.approx(0.2) and better["p_value"] < 0.01
    assert better["ci95"][0] > 0
