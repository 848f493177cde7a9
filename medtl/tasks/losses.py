"""Loss functions: (weighted) cross-entropy, focal, Dice+CE (MONAI)."""

from __future__ import annotations

import numpy as np
import torch


def balanced_class_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """``n / (C * count_c)`` (scikit-learn's 'balanced'); absent classes get weight 0."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(float)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.as_tensor(weights, dtype=torch.float32)


def classification_loss(kind: str = "ce", class_weights: torch.Tensor | None = None):
    """``loss(logits (B, C), target (B,))``: cross-entropy or focal (gamma 2), optionally class-weighted."""
    if kind == "focal":
        from monai.losses import FocalLoss

        focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0, weight=class_weights)
        return lambda logits, target: focal(logits, target.unsqueeze(1))
    return torch.nn.CrossEntropyLoss(weight=class_weights)


def segmentation_loss():
    """``loss(logits (B, C, *spatial), label map (B, *spatial))``: Dice + cross-entropy.

    The Dice term is nnU-Net's: over the foreground classes only, and over the whole
    batch at once ("batch Dice"). Per-image Dice with background makes every
    lesion-free image or patch a full-weight penalty for any foreground probability at
    all, which on small lesions teaches the network to predict nothing.
    """
    from monai.losses import DiceCELoss

    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    return lambda logits, target: dice_ce(logits, target.unsqueeze(1))
