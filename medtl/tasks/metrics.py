"""Metrics as pure functions on numpy arrays (torchmetrics and MONAI underneath).

Classification (binary: class index 1 is positive, threshold 0.5; multi-class:
one-vs-rest macro averages, argmax decisions): ``auc``, ``pr_auc``, ``accuracy``,
``sensitivity``, ``specificity``, ``f1``. AUC/PR-AUC are NaN when only one class is
present. Calibration: ``brier`` (binary: the usual Brier score of P(positive); see
``brier_score``) and ``ece`` (expected calibration error, 10 equal-width bins; binary: of P(positive),
multi-class: of the top-class probability).

Segmentation, per case, averaged over foreground classes: ``dice``, ``iou``,
``hd95`` (mm, using the voxel spacing), plus ``truth_empty`` and ``pred_empty``
(1 when the mask has no foreground). Empty-mask conventions per case: truth and
prediction both empty -> dice = iou = 1, hd95 = 0; exactly one empty -> dice =
iou = 0, hd95 = NaN (undefined; excluded from means and counted in ``hd95_undefined``). The
summaries (``medtl.tasks.segmentation``) do not let those conventions decide: the
primary figures average over cases whose truth has foreground.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

CLASSIFICATION_METRICS = ("auc", "pr_auc", "accuracy", "sensitivity", "specificity", "f1", "brier", "ece")
ECE_BINS = 10
SEGMENTATION_METRICS = ("dice", "iou", "hd95")
SEGMENTATION_CASE_COLUMNS = ("dice", "iou", "hd95", "truth_empty", "pred_empty")


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Metrics for integer ``labels`` (n,) and class ``probabilities`` (n, C)."""
    from torchmetrics import functional as F

    target = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    probs = torch.as_tensor(np.asarray(probabilities), dtype=torch.float32)
    classes = probs.shape[1]
    both_present = len(torch.unique(target)) == classes
    if classes == 2:
        score = probs[:, 1]
        out = {
            "auc": F.classification.binary_auroc(score, target).item() if both_present else math.nan,
            "pr_auc": F.classification.binary_average_precision(score, target).item() if both_present else math.nan,
            "accuracy": F.classification.binary_accuracy(score, target).item(),
            "sensitivity": F.classification.binary_recall(score, target).item(),
            "specificity": F.classification.binary_specificity(score, target).item(),
            "f1": F.classification.binary_f1_score(score, target).item(),
        }
    else:
        kw = {"num_classes": classes, "average": "macro"}
        out = {
            "auc": F.classification.multiclass_auroc(probs, target, **kw).item() if both_present else math.nan,
            "pr_auc": (F.classification.multiclass_average_precision(probs, target, **kw).item()
                       if both_present else math.nan),
            "accuracy": F.classification.multiclass_accuracy(probs, target, num_classes=classes,
                                                             average="micro").item(),
            "sensitivity": F.classification.multiclass_recall(probs, target, **kw).item(),
            "specificity": F.classification.multiclass_specificity(probs, target, **kw).item(),
            "f1": F.classification.multiclass_f1_score(probs, target, **kw).item(),
        }
    out["brier"], out["ece"] = brier_score(target.numpy(), probs.numpy()), expected_calibration_error(
        target.numpy(), probs.numpy())
    return {k: float(v) for k, v in out.items()}


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Binary: mean of (P(positive) - y)^2 (scikit-learn's ``brier_score_loss``); multi-class: the mean over cases
    of the squared distance between the probability vector and the one-hot truth."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    if probabilities.shape[1] == 2:
        return float(np.mean((probabilities[:, 1] - (labels == 1)) ** 2))
    onehot = np.eye(probabilities.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def calibration_bins(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS):
    """``(mean predicted, observed frequency, count)`` per equal-width bin (empty bins left out).

    Binary: of P(positive) against the positive label; multi-class: of the top-class
    probability against "the top class is right".
    """
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    if probabilities.shape[1] == 2:
        score, hit = probabilities[:, 1], labels == 1
    else:
        score, hit = probabilities.max(1), probabilities.argmax(1) == labels
    index = np.minimum((score * bins).astype(int), bins - 1)
    rows = [(score[index == b].mean(), hit[index == b].mean(), int((index == b).sum()))
            for b in range(bins) if (index == b).any()]
    return tuple(np.array(column) for column in zip(*rows)) if rows else (np.array([]),) * 3


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    """Count-weighted mean |observed - predicted| over the equal-width bins."""
    predicted, observed, counts = calibration_bins(labels, probabilities, bins)
    return float(np.sum(counts * np.abs(observed - predicted)) / max(1, counts.sum()))


def confusion(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Confusion matrix (rows = truth, columns = argmax prediction)."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    probs = torch.as_tensor(np.asarray(probabilities), dtype=torch.float32)
    return multiclass_confusion_matrix(probs, torch.as_tensor(labels, dtype=torch.long),
                                       num_classes=probs.shape[1]).numpy()


def segmentation_case_metrics(prediction: np.ndarray, truth: np.ndarray, num_classes: int,
                              spacing: tuple[float, ...] | None = None) -> dict[str, float]:
    """Dice, IoU and HD95 of one case (integer label arrays of equal shape)."""
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou
    from monai.networks.utils import one_hot

    pred = one_hot(torch.as_tensor(prediction, dtype=torch.long)[None, None], num_classes)
    true = one_hot(torch.as_tensor(truth, dtype=torch.long)[None, None], num_classes)
    dice = compute_dice(pred, true, include_background=False, ignore_empty=False)[0]
    iou = compute_iou(pred, true, include_background=False, ignore_empty=False)[0]
    hd = []
    for c in range(1, num_classes):
        p_empty, t_empty = not bool(pred[0, c].any()), not bool(true[0, c].any())
        if p_empty and t_empty:
            hd.append(0.0)
        elif p_empty or t_empty:
            hd.append(math.nan)
        else:
            with warnings.catch_warnings():  # MONAI 1.5 warns about an argument of its own internal call
                warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
                value = compute_hausdorff_distance(pred[:, [0, c]], true[:, [0, c]], include_background=False,
                                                   percentile=95, spacing=list(spacing) if spacing else None)
            hd.append(float(value.flatten()[0]))
    out = {"dice": float(dice.mean()), "iou": float(iou.mean()),
           "hd95": float(np.nanmean(hd)) if not all(math.isnan(h) for h in hd) else math.nan,
           "truth_empty": float(not bool(true[0, 1:].any())), "pred_empty": float(not bool(pred[0, 1:].any()))}
    if num_classes > 2:
        out.update({f"dice_{c}": float(dice[c - 1]) for c in range(1, num_classes)})
    return out
