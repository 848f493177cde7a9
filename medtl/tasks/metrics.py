"""Metrics as pure functions on numpy arrays (torchmetrics and MONAI underneath).

Classification (binary: class index 1 is positive, threshold 0.5; multi-class:
one-vs-rest macro averages, argmax decisions): ``auc``, ``pr_auc``, ``accuracy``,
``sensitivity``, ``specificity``, ``f1``. AUC/PR-AUC are NaN when only one class is
present.

Segmentation, per case, averaged over foreground classes: ``dice``, ``iou``,
``hd95`` (mm, using the voxel spacing), plus ``truth_empty`` and ``pred_empty``
(1 when the mask has no foreground). Empty-mask conventions per case: truth and
prediction both empty -> dice = iou = 1, hd95 = 0; exactly one empty -> dice =
iou = 0, hd95 = NaN (undefined; excluded from means and counted separately). The
summaries (``medtl.tasks.segmentation``) do not let those conventions decide: the
primary figures average over cases whose truth has foreground.
"""

from __future__ import annotations

import math

import numpy as np
import torch

CLASSIFICATION_METRICS = ("auc", "pr_auc", "accuracy", "sensitivity", "specificity", "f1")
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
    return {k: float(v) for k, v in out.items()}


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
            value = compute_hausdorff_distance(pred[:, [0, c]], true[:, [0, c]], include_background=False,
                                               percentile=95, spacing=list(spacing) if spacing else None)
            hd.append(float(value.flatten()[0]))
    out = {"dice": float(dice.mean()), "iou": float(iou.mean()),
           "hd95": float(np.nanmean(hd)) if not all(math.isnan(h) for h in hd) else math.nan,
           "truth_empty": float(not bool(true[0, 1:].any())), "pred_empty": float(not bool(pred[0, 1:].any()))}
    if num_classes > 2:
        out.update({f"dice_{c}": float(dice[c - 1]) for c in range(1, num_classes)})
    return out
