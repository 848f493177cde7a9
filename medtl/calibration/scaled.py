"""A network whose logits are divided by its calibration temperature: what ``medtl export`` writes, so a runner
anywhere gets calibrated probabilities from a plain softmax (and the parity gate checks the division too)."""

from __future__ import annotations

import torch
from torch import nn


class TemperatureScaled(nn.Module):
    """``network(x) / temperature`` (a classification network's logits)."""

    def __init__(self, network: nn.Module, temperature: float):
        super().__init__()
        self.network = network
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.dense_output = getattr(network, "dense_output", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x) / self.temperature
