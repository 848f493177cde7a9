"""BYOL (Grill et al. 2020): an online network predicts an EMA target network's projection; no negatives.

Small-batch friendly (no batch of negatives to fill), which suits one GPU or a CPU.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..config import SSLConfig
from ..models.build import MedtlModel
from .heads import mlp


def target_momentum(base: float, step: int, total_steps: int) -> float:
    """BYOL's schedule: ``1 - (1 - base) * (cos(pi * step / total) + 1) / 2``, from ``base`` to 1."""
    return 1 - (1 - base) * (math.cos(math.pi * min(step, total_steps) / max(1, total_steps)) + 1) / 2


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online`` for every parameter; buffers are copied.

    BatchNorm running statistics are not averaged: the target takes the online network's.
    """
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def _regression(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(p, z)`` per pair, averaged."""
    return (2 - 2 * nn.functional.cosine_similarity(p, z.detach(), dim=1)).mean()


class BYOL(nn.Module):
    """Online encoder + projector + predictor, and a target encoder + projector (EMA copies, never trained)."""

    method = "byol"

    def __init__(self, encoder: MedtlModel, ssl: SSLConfig):
        super().__init__()
        width = encoder.spec.feature_channels[-1]
        self.encoder = encoder
        self.projector = mlp(width, ssl.hidden_dim, ssl.projection_dim)
        self.predictor = mlp(ssl.projection_dim, ssl.hidden_dim, ssl.projection_dim)
        self.target = nn.ModuleDict({"encoder": copy.deepcopy(encoder), "projector": copy.deepcopy(self.projector)})
        self.target.requires_grad_(False)
        self.base_momentum = ssl.ema_decay

    def online(self) -> nn.ModuleDict:
        """The online modules the target follows (same structure as ``target``)."""
        return nn.ModuleDict({"encoder": self.encoder, "projector": self.projector})

    def loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        """Symmetric: each view's prediction regresses the target's projection of the other view."""
        both = torch.cat([view_a, view_b])
        p = self.predictor(self.projector(self.encoder.encode(both)))
        with torch.no_grad():
            z = self.target["projector"](self.target["encoder"].encode(both))
        n = len(view_a)
        return _regression(p[:n], z[n:]) + _regression(p[n:], z[:n])

    def after_step(self, step: int, total_steps: int) -> None:
        """Move the target towards the online network (the momentum rises to 1 over training)."""
        ema_update(self.target, self.online(), target_momentum(self.base_momentum, step, total_steps))
