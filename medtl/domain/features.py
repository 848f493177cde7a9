"""Pooled encoder features of images: what the shift check and re-weighting look at."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch


@torch.no_grad()
def encoder_features(model, images: Sequence, device: torch.device, batch_size: int = 16) -> np.ndarray:
    """``(N, C)`` pooled bottleneck features of ``images`` (objects with an ``image`` array, fixed size).

    The model is put in eval mode (BatchNorm running statistics, no dropout), so a case's
    features do not depend on the other images in its batch.
    """
    was_training = model.training
    model.eval()
    model.to(device)
    out = []
    for start in range(0, len(images), batch_size):
        batch = np.stack([np.asarray(i.image, dtype=np.float32) for i in images[start:start + batch_size]])
        out.append(model.encode(torch.from_numpy(batch).to(device)).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.spec.feature_channels[-1]), np.float32)


def concatenated(parts: Iterable[np.ndarray]) -> np.ndarray:
    """Row-wise concatenation of feature blocks."""
    return np.concatenate(list(parts))
