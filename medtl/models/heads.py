"""Task heads over a backbone's multi-scale features."""

from __future__ import annotations

import torch
from torch import nn

from ..plumbing.registry import Registry


class ClassificationHead(nn.Module):
    """Global average pooling, dropout, linear: binary, multi-class or multi-label logits."""

    dense_output = False  # one logit vector per image
    pads_input = False

    def __init__(self, in_channels: int, num_classes: int, dims: int, dropout: float = 0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, features: list[torch.Tensor], input_shape: torch.Size | None = None) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(features[-1]), 1)))


def decoder_channels(feature_channels: tuple[int, ...]) -> tuple[int, ...]:
    """Decoder widths, deepest first: the U-Net defaults capped by the encoder's own widths."""
    defaults = (256, 128, 64, 32, 16)
    return tuple(max(8, min(d, c)) for d, c in zip(defaults, reversed(feature_channels)))


class SegmentationHead(nn.Module):
    """U-Net decoder (MONAI's FlexibleUNet blocks) with skips, logits at input resolution."""

    dense_output = True  # logits per voxel: the input is padded to the deepest stride and cropped back
    pads_input = True

    def __init__(self, feature_channels: tuple[int, ...], num_classes: int, dims: int, in_channels: int):
        super().__init__()
        from monai.networks.nets.flexible_unet import SegmentationHead as OutputConv
        from monai.networks.nets.flexible_unet import UNetDecoder

        channels = decoder_channels(feature_channels)
        self.decoder = UNetDecoder(spatial_dims=dims, encoder_channels=(in_channels, *feature_channels),
                                   decoder_channels=channels, act=("relu", {"inplace": True}),
                                   norm=("batch", {"eps": 1e-3, "momentum": 0.1}), dropout=0.0, bias=False,
                                   upsample="nontrainable", pre_conv="default", interp_mode="nearest",
                                   align_corners=None, is_pad=True)
        self.output = OutputConv(spatial_dims=dims, in_channels=channels[-1], out_channels=num_classes,
                                 kernel_size=3, act=None)

    def forward(self, features: list[torch.Tensor], input_shape: torch.Size | None = None) -> torch.Tensor:
        return self.output(self.decoder(features, len(features) - 1))


class MultiTaskHead(nn.Module):
    """One head per task over the same encoder features; ``forward`` returns ``{task: logits}``.

    The input is padded for the decoder when any head is dense (the logits of dense heads
    are cropped back by ``MedtlModel``).
    """

    dense_output = False  # the output is a dict, not one tensor

    def __init__(self, heads: dict[str, nn.Module]):
        super().__init__()
        self.heads = nn.ModuleDict(heads)
        self.pads_input = any(h.dense_output for h in heads.values())

    def forward(self, features: list[torch.Tensor], input_shape: torch.Size | None = None) -> dict[str, torch.Tensor]:
        return {name: head(features, input_shape) for name, head in self.heads.items()}


def _classification_head(feature_channels, num_classes, dims, in_channels, dropout) -> nn.Module:
    return ClassificationHead(feature_channels[-1], num_classes, dims, dropout)


def _segmentation_head(feature_channels, num_classes, dims, in_channels, dropout) -> nn.Module:
    return SegmentationHead(feature_channels, num_classes, dims, in_channels)


HEADS = Registry("head")
HEADS.register("classification", _classification_head)
HEADS.register("segmentation", _segmentation_head)


def order_classes(head: nn.Module, order: list[int], task: str = "") -> None:
    """Re-order a classification head's outputs: output ``i`` becomes the former output ``order[i]`` (weights and
    bias rows moved, nothing re-drawn). ``task``: the head of a multi-task model; a dense head is left alone."""
    if isinstance(head, MultiTaskHead):
        head = head.heads[task]
    if not isinstance(head, ClassificationHead):
        return
    with torch.no_grad():
        head.fc.weight.copy_(head.fc.weight[order].clone())
        head.fc.bias.copy_(head.fc.bias[order].clone())
