"""Restoration pretraining: the encoder and its segmentation decoder rebuild the original image."""

from __future__ import annotations

import torch
from torch import nn

from ..models.build import MedtlModel


class Restoration(nn.Module):
    """``loss(corrupted, original)``: mean squared error of the decoder's one-channel output."""

    method = "restore"

    def __init__(self, encoder: MedtlModel):
        super().__init__()
        if not encoder.head.dense_output or encoder.num_classes != 1:
            raise ValueError("restoration needs a model with a one-channel segmentation head")
        self.encoder = encoder

    def loss(self, corrupted: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """How far the restored image is from the original (normalised intensity units)."""
        return nn.functional.mse_loss(self.encoder(corrupted).float(), original)

    def after_step(self, step: int, total_steps: int) -> None:
        """Nothing to do after an optimiser step."""
