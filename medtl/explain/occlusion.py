"""Occlusion sensitivity (Zeiler & Fergus 2014) with MONAI's ``OcclusionSensitivity``, batched.

A box (``size`` voxels per side, placed with ``overlap``) is replaced by the image's mean
at every position; the map is how much the class probability drops:
``p(class | image) - p(class | occluded image)``, averaged over the boxes covering each
voxel (positive = evidence for the class, negative = against it). A region the model
does not use gets exactly 0.

MONAI's ``activate=True`` chooses sigmoid or softmax by the number of *input* channels,
so on a grayscale image it would put a sigmoid on every class logit: medtl passes the
softmax over classes explicitly.
"""

from __future__ import annotations

import numpy as np
import torch


def occlusion_maps(model, images: torch.Tensor, classes: list[int], size: int = 16, overlap: float = 0.5,
                   batch: int = 16, progress: bool = False) -> np.ndarray:
    """``(B, *spatial)`` probability drops for ``classes[i]`` when each region of ``images[i]`` is occluded."""
    from monai.visualize import OcclusionSensitivity

    sensitivity = OcclusionSensitivity(model, mask_size=size, n_batch=batch, verbose=progress, mode="mean_img",
                                       overlap=overlap, activate=lambda logits: torch.softmax(logits.float(), dim=1))
    out = np.zeros((len(images), *images.shape[2:]), dtype=np.float32)
    with torch.no_grad():
        original = torch.softmax(model(images).float(), dim=1)
        for i, index in enumerate(classes):
            occluded, _ = sensitivity(images[i:i + 1])
            out[i] = (original[i, index] - occluded[0, index]).cpu().numpy()
    return out
