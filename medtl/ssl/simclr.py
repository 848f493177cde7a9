"""SimCLR (Chen et al. 2020) and MICLe (Azizi et al. 2021): NT-Xent on two views, via MONAI's ContrastiveLoss."""

from __future__ import annotations

import torch
from torch import nn

from ..config import SSLConfig
from ..models.build import MedtlModel
from .heads import mlp


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy of paired embeddings ``a[i] ~ b[i]`` (MONAI ``ContrastiveLoss``).

    Each of the 2N embeddings has one positive (its pair) and 2N - 2 negatives; cosine
    similarity divided by ``temperature``; mean over the 2N anchors.
    """
    from monai.losses import ContrastiveLoss

    return ContrastiveLoss(temperature=temperature)(a, b)


class SimCLR(nn.Module):
    """Encoder + projection head; ``loss(view_a, view_b)`` is NT-Xent of the projections."""

    method = "simclr"

    def __init__(self, encoder: MedtlModel, ssl: SSLConfig):
        super().__init__()
        width = encoder.spec.feature_channels[-1]
        self.encoder, self.projector = encoder, mlp(width, ssl.hidden_dim, ssl.projection_dim)
        self.temperature = ssl.temperature

    def loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        """NT-Xent of one batch of view pairs (both views through the encoder in one pass)."""
        z = self.projector(self.encoder.encode(torch.cat([view_a, view_b])))
        return nt_xent(z[: len(view_a)], z[len(view_a):], self.temperature)

    def after_step(self, step: int, total_steps: int) -> None:
        """Nothing to do after an optimiser step (BYOL updates its target here)."""
