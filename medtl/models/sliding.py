"""Inference on images larger than the network's patch (``data.mode: patch``).

``network_logits`` is the one place that turns a batch of prepared images into logits:

* fixed-size inputs (resize mode, or one ROI crop): one forward pass;
* dense outputs (segmentation) at native extent: MONAI's ``sliding_window_inference``
  with the configured overlap, blending (gaussian or constant), window batch, windows
  on the model's device and the stitched output on the CPU (a whole CT's logits need
  not fit in GPU memory);
* classification at native extent: the logits of every window, reduced by ``mean``
  or ``max`` (``data.aggregate``), windows placed as MONAI places them.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..config import DataConfig


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Window corners along one axis: MONAI's scan (step ``int(patch * (1 - overlap))``, last window at the end)."""
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1 - overlap)))
    count = math.ceil((size - patch) / step) + 1
    return sorted({min(i * step, size - patch) for i in range(count)})


def sliding_window_logits(model: nn.Module, images: torch.Tensor, data: DataConfig,
                          device: torch.device) -> torch.Tensor:
    """Blended per-voxel logits ``(N, K, *spatial)`` on the CPU for images at any extent."""
    from monai.inferers import sliding_window_inference

    window = data.sliding_window
    return sliding_window_inference(images, roi_size=tuple(data.patch_size), sw_batch_size=window.batch_size,
                                    predictor=lambda x: model(x).float(), overlap=window.overlap, mode=window.blend,
                                    sigma_scale=window.sigma_scale, padding_mode="replicate", sw_device=device,
                                    device=torch.device("cpu"), progress=False)


def aggregated_window_logits(model: nn.Module, images: torch.Tensor, data: DataConfig,
                             device: torch.device) -> torch.Tensor:
    """One logit vector per image ``(N, K)``: the windows' logits reduced by ``data.aggregate`` (mean or max)."""
    size = tuple(data.patch_size)
    out = []
    for image in images:
        missing = [max(0, p - s) for p, s in zip(size, image.shape[1:])]
        if any(missing):  # smaller than a window: padded at the far end, as in training
            flat = [amount for m in reversed(missing) for amount in (0, m)]
            image = nn.functional.pad(image[None], flat, mode="replicate")[0]
        corners = itertools.product(*[window_starts(s, p, data.sliding_window.overlap)
                                      for s, p in zip(image.shape[1:], size)])
        windows = [image[(slice(None), *[slice(c, c + p) for c, p in zip(corner, size)])] for corner in corners]
        logits = torch.cat([model(torch.stack(windows[i:i + data.sliding_window.batch_size]).to(device)).float()
                            for i in range(0, len(windows), data.sliding_window.batch_size)])
        out.append(logits.mean(0) if data.aggregate == "mean" else logits.max(0).values)
    return torch.stack(out).cpu()


def network_logits(model: nn.Module, images: torch.Tensor, data: DataConfig, device: torch.device) -> torch.Tensor:
    """Logits for a batch of prepared images, whole, by sliding window, or aggregated over windows."""
    if data.fixed_size:
        logits = model(images.to(device))
        if isinstance(logits, dict):  # multitask (whole-image inputs only)
            return {name: value.float() for name, value in logits.items()}
        return logits.float()
    if model.dense_output:
        return sliding_window_logits(model, images, data, device)
    return aggregated_window_logits(model, images, data, device)
