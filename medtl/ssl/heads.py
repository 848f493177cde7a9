"""The small MLPs self-supervised objectives put on the pooled encoder features."""

from __future__ import annotations

from torch import nn


def mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    """Linear - BatchNorm - ReLU - Linear: the SimCLR projection head and the BYOL projector/predictor."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out_features))
