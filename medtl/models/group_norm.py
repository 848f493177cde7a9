"""BatchNorm replaced by GroupNorm: the variant a per-image (DP-SGD) gradient needs.

BatchNorm mixes the images of a batch, so one image's gradient depends on the others and
cannot be clipped alone; GroupNorm normalises each image by itself.
"""

from __future__ import annotations

import math

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

MAX_GROUPS = 32


def groups_for(channels: int) -> int:
    """The most groups (at most 32, at least 2 channels each, so a 1x1 map still normalises) dividing ``channels``."""
    return math.gcd(channels, min(MAX_GROUPS, max(1, channels // 2)))


def to_group_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` (in place) by a GroupNorm over the same channels with the same
    affine weight and bias; returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm):
            norm = nn.GroupNorm(groups_for(child.num_features), child.num_features, eps=child.eps,
                                affine=child.affine)
            if child.affine:
                norm.weight.data.copy_(child.weight.data)
                norm.bias.data.copy_(child.bias.data)
            setattr(module, name, norm)
        else:
            to_group_norm(child)
    return module


def has_batch_norm(module: nn.Module) -> bool:
    """Whether any layer of ``module`` is a BatchNorm."""
    return any(isinstance(m, _BatchNorm) for m in module.modules())
