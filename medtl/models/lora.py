"""Low-rank adapters (LoRA, Hu et al. 2021) on ``nn.Linear`` and ``nn.Conv1d/2d/3d``.

A wrapped layer computes ``base(x) + (alpha / rank) * B(A(dropout(x)))`` with the base
frozen, ``A`` drawn like a Kaiming-uniform layer and ``B`` zero, so training starts from
the pretrained function exactly. For a convolution ``A`` is a convolution with the base's
kernel, stride, padding and dilation into ``rank`` channels and ``B`` a 1x1 convolution,
so the update is a kernel of the base's shape: ``merge_lora`` folds it into the base
weight (``W + alpha/rank * B @ A``) and puts the plain layer back, for export and prediction.
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class LoRALayer(nn.Module):
    """A frozen ``base`` layer plus a trainable low-rank update."""

    def __init__(self, base: nn.Module, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError("LoRA rank must be >= 1")
        self.base, self.rank, self.scale = base, rank, alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        if isinstance(base, nn.Linear):
            self.lora_a = nn.Linear(base.in_features, rank, bias=False)
            self.lora_b = nn.Linear(rank, base.out_features, bias=False)
        elif isinstance(base, _CONV):
            if base.groups != 1:
                raise ValueError("LoRA on grouped or depthwise convolutions is not supported")
            conv = type(base)
            self.lora_a = conv(base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation,
                               bias=False, padding_mode=base.padding_mode)
            self.lora_b = conv(rank, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA wraps nn.Linear and nn.Conv*d, not {type(base).__name__}")
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.lora_b(self.lora_a(self.dropout(x)))

    def delta_weight(self) -> torch.Tensor:
        """The update in the base weight's shape: ``alpha/rank * B @ A``."""
        a, b = self.lora_a.weight, self.lora_b.weight
        if isinstance(self.base, nn.Linear):
            return self.scale * (b @ a)
        return self.scale * torch.einsum("or,ri...->oi...", b.flatten(1), a)

    def merged(self) -> nn.Module:
        """The base layer with the update folded into its weight (a plain layer again)."""
        with torch.no_grad():
            self.base.weight.add_(self.delta_weight().to(self.base.weight.dtype))
        for parameter in self.base.parameters():
            parameter.requires_grad_(True)
        return self.base


def lora_targets(backbone: nn.Module, patterns: list[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Names of the ``nn.Linear`` / ungrouped ``nn.Conv*d`` layers whose name matches one of the fnmatch
    ``patterns`` (``"auto"``: every attention qkv / output projection when the backbone has attention,
    else every ungrouped convolution with a kernel larger than 1 except ``skip`` (the first layer))."""
    layers = {name: m for name, m in backbone.named_modules()
              if isinstance(m, nn.Linear) or (isinstance(m, _CONV) and m.groups == 1)}
    if patterns == ["auto"]:
        attention = [n for n, m in layers.items() if isinstance(m, nn.Linear) and n.endswith(("attn.qkv", "attn.proj"))]
        if attention:
            return attention
        return [n for n, m in layers.items() if isinstance(m, _CONV) and max(m.kernel_size) > 1 and n not in skip]
    return [n for n in layers if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def add_lora(backbone: nn.Module, names: list[str], rank: int, alpha: float, dropout: float = 0.0) -> None:
    """Wrap each named layer of ``backbone`` in a ``LoRALayer`` (in place)."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        setattr(parent, child, LoRALayer(getattr(parent, child), rank, alpha, dropout))


def has_lora(module: nn.Module) -> bool:
    return any(isinstance(m, LoRALayer) for m in module.modules())


def merge_lora(module: nn.Module) -> int:
    """Fold every adapter of ``module`` into its base layer and unwrap it; returns how many were merged."""
    wrapped = [(name, m) for name, m in module.named_modules() if isinstance(m, LoRALayer)]
    for name, layer in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, layer.merged())
    return len(wrapped)
