"""Grad-CAM (Selvaraju et al. 2017) with MONAI's ``GradCAM``, normalised so that 1 = most important.

``map = ReLU(sum_k w_k A_k)``, ``w_k`` = the spatial mean of d(class logit)/dA_k over the
target layer's activations ``A``, upsampled (linear) to the input size, then divided by
its maximum per image. MONAI's default post-processing maps (min, max) to (1, 0) and so
inverts the map; medtl passes its own normaliser.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def unit_max(maps: torch.Tensor) -> torch.Tensor:
    """Each map ``(B, 1, *spatial)`` divided by its maximum (1 = most important, 0 = no evidence); all-zero stays 0."""
    flat = maps.reshape(len(maps), -1)
    peak = flat.max(dim=1).values.clamp_min(1e-12).reshape(-1, *[1] * (maps.dim() - 1))
    return torch.where(peak > 1e-12, maps / peak, torch.zeros_like(maps))


MIN_EXTENT = 3  # voxels per axis the target layer's output must keep: a 1x1 map says nothing about where


def default_layer(model: nn.Module, spatial_shape: tuple[int, ...] | None = None) -> str:
    """The deepest encoder stage (from the backbone's stage list and strides) whose output keeps at least
    ``MIN_EXTENT`` voxels along every axis of ``spatial_shape``: ``layer4`` of a ResNet at 224 px (7x7),
    ``layer3`` at 64 px (``layer4`` would be 2x2). A backbone whose stages do not output maps (a ViT's
    tokens) names its own layer (``cam_layer``)."""
    own = getattr(getattr(model, "backbone", None), "cam_layer", None)
    if own:  # a transformer: its token grid (input / patch), the only spatial map it has
        return f"backbone.{own}"
    names = {id(module): name for name, module in model.named_modules()}
    stages = model.stages()
    chosen = stages[-1]
    if spatial_shape is not None:
        for (name, modules), stride in reversed(list(zip(stages, model.spec.reductions))):
            chosen = (name, modules)
            if min(s // stride for s in spatial_shape) >= MIN_EXTENT:
                break
    return names[id(chosen[1][-1])]


def gradcam_maps(model: nn.Module, images: torch.Tensor, classes: list[int], layer: str | None = None) -> np.ndarray:
    """``(B, *spatial)`` Grad-CAM maps of ``classes[i]`` for ``images[i]``, each with maximum 1 (or all 0)."""
    from monai.visualize import GradCAM

    layer = layer or default_layer(model, tuple(images.shape[2:]))
    known = dict(model.named_modules())
    if layer not in known:
        raise ValueError(f"no layer '{layer}' in this model; e.g. {default_layer(model)}")
    cam = GradCAM(nn_module=model, target_layers=layer, postprocessing=unit_max)
    out = np.zeros((len(images), *images.shape[2:]), dtype=np.float32)
    with torch.enable_grad():
        for index in sorted(set(classes)):
            rows = [i for i, c in enumerate(classes) if c == index]
            maps = cam(images[rows], class_idx=index)
            out[rows] = maps[:, 0].detach().cpu().numpy()
    return out
