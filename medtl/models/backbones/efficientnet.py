"""EfficientNet backbones on MONAI's EfficientNetBNFeatures (2D and 3D)."""

from __future__ import annotations

import torch
from monai.networks.nets.efficientnet import EfficientNetBNFeatures

from .spec import BackboneSpec


class EfficientNetBackbone(EfficientNetBNFeatures):
    """MONAI EfficientNet features at strides 2-32, without the head convolution and classifier."""

    def __init__(self, dims: int, in_channels: int, model_name: str = "efficientnet-b0"):
        super().__init__(model_name, pretrained=False, spatial_dims=dims, in_channels=in_channels)
        # Unused by a feature extractor; the ImageNet checkpoint's copies are reported as dropped.
        del self._conv_head, self._conv_head_padding, self._bn1, self._fc

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return super().forward(x)

    def stages(self):
        # features are tapped after block stacks listed in extract_stacks (1-based ends)
        bounds = [0] + sorted(s for s in self.extract_stacks if s > 0)
        stages = [("stem", [self._conv_stem, self._bn0])]
        for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
            stages.append((f"stack{index + 1}", [self._blocks[i] for i in range(start, stop)]))
        return stages


SPECS = (BackboneSpec(
    name="efficientnet-b0", family="efficientnet",
    builder=lambda dims, in_channels, **arch: EfficientNetBackbone(dims, in_channels, "efficientnet-b0"),
    feature_channels=(16, 24, 40, 112, 320), first_conv="_conv_stem.weight",
    classifier_prefixes=("_fc.", "_conv_head.", "_bn1."), sources={"imagenet": {2: "efficientnet-b0-imagenet"}},
    description="EfficientNet-B0 (Tan & Le), MONAI implementation",
),)
