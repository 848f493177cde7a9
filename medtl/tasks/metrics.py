"""Metrics as pure functions on numpy arrays (torchmetrics and MONAI underneath).

Classification (binary: class index 1 is positive, threshold 0.5; multi-class:
one-vs-rest macro averages, argmax decisions): ``auc``, ``pr_auc``, ``accuracy``,
``sensitivity``, ``specificity``, ``f1``. AUC/PR-AUC are NaN when only one class is
present. Calibration: ``brier`` (binary: the usual Brier score of P(positive); see
``brier_score``) and ``ece`` (expected calibration error, 10 equal-width bins; binary: of P(positive),
multi-class: of the top-class probability).

Segmentation, per case, averaged over the foreground classes present in the truth:
``dice``, ``iou``, ``hd95`` (mm, using the voxel spacing), plus ``truth_empty`` and
``pred_empty`` (1 when the mask has no foreground); with several foreground classes also
per class (``dice_<c>``, ``iou_<c>``, ``hd95_<c>``: NaN for a class absent from the truth;
``stray_<c>``: that absent class predicted anyway). Empty-mask conventions per case: truth and
prediction both empty -> dice = iou = 1, hd95 = 0; exactly one empty -> dice =
iou = 0, hd95 = NaN (undefined; excluded from means and counted in ``hd95_undefined``). The
summaries (``medtl.tasks.segmentation``) do not let those conventions decide: the
primary figures average over cases whose truth has foreground.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch

CLASSIFICATION_METRICS = ("auc", "pr_auc", "accuracy", "sensitivity", "specificity", "f1", "brier", "ece")
ECE_BINS = 10
SEGMENTATION_METRICS = ("dice", "iou", "hd95")
SEGMENTATION_CASE_COLUMNS = ("dice", "iou", "hd95", "truth_empty", "pred_empty")


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           names: Sequence[str] | None = None) -> dict[str, float]:
    """Metrics for integer ``labels`` (n,) and class ``probabilities`` (n, C): all of them, or only ``names``
    (a bootstrap of one metric need not compute the others)."""
    from torchmetrics import functional as F

    target = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    probs = torch.as_tensor(np.asarray(probabilities), dtype=torch.float32)
    classes = probs.shape[1]
    both_present = len(torch.unique(target)) == classes
    C = F.classification
    # medtl builds these inputs (class indices of the manifest, softmax outputs); torchmetrics' per-call argument
    # checks cost more than the metric itself on a bootstrap resample (15x on 5,000 cases), and change no value
    binary = {"validate_args": False}
    if classes == 2:
        score = probs[:, 1]
        ranking: dict[str, float] = {}  # AUC and AP from one sorted curve

        def from_curve(name: str) -> float:
            if not both_present:
                return math.nan
            if not ranking:
                ranking.update(zip(("auc", "pr_auc"), binary_auroc_and_average_precision(score, target)))
            return ranking[name]

        compute = {"auc": lambda: from_curve("auc"), "pr_auc": lambda: from_curve("pr_auc")}
        counts = []  # one confusion count serves accuracy, sensitivity, specificity and F1 (torchmetrics' formulas)

        def from_counts(name: str) -> float:
            if not counts:
                counts.extend(C.binary_stat_scores(score, target, **binary)[:4].float())
            tp, fp, tn, fn = counts
            numerator, denominator = {"accuracy": (tp + tn, tp + tn + fp + fn), "sensitivity": (tp, tp + fn),
                                      "specificity": (tn, tn + fp), "f1": (2 * tp, 2 * tp + fn + fp)}[name]
            return (numerator / denominator).item() if denominator > 0 else 0.0

        for name in ("accuracy", "sensitivity", "specificity", "f1"):
            compute[name] = lambda name=name: from_counts(name)
    else:
        kw = {"num_classes": classes, "average": "macro", "validate_args": False}
        compute = {
            "auc": lambda: C.multiclass_auroc(probs, target, **kw).item() if both_present else math.nan,
            "pr_auc": lambda: (C.multiclass_average_precision(probs, target, **kw).item()
                               if both_present else math.nan),
            "accuracy": lambda: C.multiclass_accuracy(probs, target, num_classes=classes, average="micro",
                                                      validate_args=False).item(),
            "sensitivity": lambda: C.multiclass_recall(probs, target, **kw).item(),
            "specificity": lambda: C.multiclass_specificity(probs, target, **kw).item(),
            "f1": lambda: C.multiclass_f1_score(probs, target, **kw).item(),
        }
    compute["brier"] = lambda: brier_score(target.numpy(), probs.numpy())
    compute["ece"] = lambda: expected_calibration_error(target.numpy(), probs.numpy())
    return {name: float(compute[name]()) for name in (compute if names is None else names)}


def binary_auroc_and_average_precision(score: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """torchmetrics' ``binary_auroc`` and ``binary_average_precision`` (exact thresholds) of ``score`` (n,) for
    ``target`` (n,) holding both classes, from one sorted curve.

    Each of the two torchmetrics functions sorts the scores and builds the same curve; on a
    bootstrap resample that is most of the cost. This builds it once with torchmetrics' own
    steps and finishes each metric with the operations torchmetrics applies to it, so the
    values are the same to the bit (tested against both functions).
    """
    from torchmetrics.functional.classification.precision_recall_curve import (
        _binary_clf_curve,
        _binary_precision_recall_curve_format,
    )

    preds, target, _ = _binary_precision_recall_curve_format(score, target)
    fps, tps, _ = _binary_clf_curve(preds, target, pos_label=1)
    with torch.no_grad():
        zero = torch.zeros(1, dtype=tps.dtype)
        roc_tps, roc_fps = torch.cat([zero, tps]), torch.cat([zero, fps])  # the ROC curve starts at (0, 0)
        auc = torch.trapz(roc_tps / roc_tps[-1], roc_fps / roc_fps[-1], dim=-1) * 1.0
        precision = tps / (tps + fps)
        recall = tps / tps[-1]
        precision = torch.cat([precision.flip(0), torch.ones(1, dtype=precision.dtype)])
        recall = torch.cat([recall.flip(0), torch.zeros(1, dtype=recall.dtype)])
        precision = torch.where(torch.isnan(precision), torch.zeros_like(precision), precision)
        recall = torch.where(torch.isnan(recall), torch.zeros_like(recall), recall)
        average_precision = -torch.sum((recall[1:] - recall[:-1]) * precision[:-1])
    return auc.item(), average_precision.item()


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
    # each bin's cases in their original order (a stable sort by bin), so each mean adds the same numbers in the
    # same order as a boolean selection of the bin would: the same values, one pass instead of one per bin
    order = np.argsort(index, kind="stable")
    score, hit = score[order], hit[order]
    counts = np.bincount(index, minlength=bins)
    ends = np.cumsum(counts)
    rows = [(score[end - count:end].mean(), hit[end - count:end].mean(), int(count))
            for count, end in zip(counts, ends) if count]
    return tuple(np.array(column) for column in zip(*rows)) if rows else (np.array([]),) * 3


def equal_mass_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` bins holding (nearly) equal numbers of cases, sorted by the score ``calibration_bins``
    uses: unlike equal-width bins, no bin is nearly empty when the scores crowd at one end."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    if probabilities.shape[1] == 2:
        score, hit = probabilities[:, 1], labels == 1
    else:
        score, hit = probabilities.max(1), probabilities.argmax(1) == labels
    order = np.argsort(score, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, len(order))) if len(g)]
    return float(sum(len(g) * abs(hit[g].mean() - score[g].mean()) for g in groups) / max(1, len(order)))


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
    """Dice, IoU and HD95 of one case (integer label arrays of equal shape).

    The case's ``dice``/``iou``/``hd95`` average the foreground classes present in its truth;
    with more than one foreground class, ``dice_<c>``/``iou_<c>``/``hd95_<c>`` are NaN for a
    class absent from the truth and ``stray_<c>`` (1/0, NaN where the class is present) says
    whether the network predicted it anyway: a detection error, not a Dice of 0 (nor of 1).
    A truth without any foreground keeps the empty-mask convention (module docstring).
    """
    from monai.metrics import compute_dice, compute_iou
    from monai.networks.utils import one_hot

    pred = one_hot(torch.as_tensor(prediction, dtype=torch.long)[None, None], num_classes)
    true = one_hot(torch.as_tensor(truth, dtype=torch.long)[None, None], num_classes)
    dice = compute_dice(pred, true, include_background=False, ignore_empty=False)[0].numpy().astype(float)
    iou = compute_iou(pred, true, include_background=False, ignore_empty=False)[0].numpy().astype(float)
    present = np.array([bool(true[0, c].any()) for c in range(1, num_classes)])
    predicted = np.array([bool(pred[0, c].any()) for c in range(1, num_classes)])
    hd = np.array([_hd95(pred, true, c, spacing) if present[c - 1] else math.nan for c in range(1, num_classes)])
    if present.any():
        case = {"dice": float(dice[present].mean()), "iou": float(iou[present].mean()),
                "hd95": float(np.nanmean(hd[present])) if np.isfinite(hd[present]).any() else math.nan}
    else:  # nothing to find: 1 when nothing was predicted either, else 0 (the summaries keep these apart)
        case = {"dice": float(not predicted.any()), "iou": float(not predicted.any()),
                "hd95": 0.0 if not predicted.any() else math.nan}
    out = {**case, "truth_empty": float(not present.any()), "pred_empty": float(not predicted.any())}
    if num_classes > 2:
        for c in range(1, num_classes):
            here = present[c - 1]
            out.update({f"dice_{c}": float(dice[c - 1]) if here else math.nan,
                        f"iou_{c}": float(iou[c - 1]) if here else math.nan,
                        f"hd95_{c}": float(hd[c - 1]),
                        f"stray_{c}": math.nan if here else float(predicted[c - 1])})
    return out


def _hd95(pred: torch.Tensor, true: torch.Tensor, c: int, spacing) -> float:
    """HD95 (mm) of class ``c`` present in the truth; NaN when the prediction has none of it (undefined)."""
    from monai.metrics import compute_hausdorff_distance

    if not bool(pred[0, c].any()):
        return math.nan
    with warnings.catch_warnings():  # MONAI 1.5 warns about an argument of its own internal call
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        value = compute_hausdorff_distance(pred[:, [0, c]], true[:, [0, c]], include_background=False,
                                           percentile=95, spacing=list(spacing) if spacing else None)
    return float(value.flatten()[0])
