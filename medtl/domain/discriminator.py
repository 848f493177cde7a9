"""The domain discriminator of DANN: pooled encoder features -> logit of "target image"."""

from __future__ import annotations

import torch
from torch import nn

from .gradient_reversal import reverse_gradient


class DomainDiscriminator(nn.Module):
    """Two hidden layers (ReLU, dropout 0.5 as in Ganin et al.) behind a gradient-reversal layer."""

    def __init__(self, in_features: int, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                 nn.Linear(width, width), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                 nn.Linear(width, 1))

    def forward(self, features: torch.Tensor, lam: float) -> torch.Tensor:
        """``(B,)`` logits; the encoder behind ``features`` gets the reversed, ``lam``-scaled gradient."""
        return self.net(reverse_gradient(features, lam)).squeeze(1)


def domain_loss(discriminator: DomainDiscriminator, source: torch.Tensor, target: torch.Tensor,
                lam: float) -> tuple[torch.Tensor, float]:
    """Binary cross-entropy of telling source (0) from target (1) features, and the discriminator's accuracy."""
    features = torch.cat([source, target])
    truth = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(features.device)
    logits = discriminator(features.float(), lam)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, truth)
    accuracy = float(((logits > 0).float() == truth).float().mean())
    return loss, accuracy
