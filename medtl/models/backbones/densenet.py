"""DenseNet backbones on MONAI's DenseNet (2D and 3D)."""

from __future__ import annotations

import torch
from monai.networks.nets.densenet import DenseNet

from .spec import BackboneSpec


class DenseNetBackbone(DenseNet):
    """MONAI DenseNet without its classifier; features after the stem and each dense block."""

    _TAPS = ("relu0", "denseblock1", "denseblock2", "denseblock3", "norm5")

    def __init__(self, dims: int, in_channels: int, init_features: int = 64, growth_rate: int = 32,
                 block_config=(6, 12, 24, 16)):
        super().__init__(spatial_dims=dims, in_channels=in_channels, out_channels=1, init_features=init_features,
                         growth_rate=growth_rate, block_config=tuple(block_config))
        del self.class_layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for name, module in self.features.named_children():
            x = module(x)
            if name in self._TAPS:
                features.append(torch.relu(x) if name == "norm5" else x)
        return features

    def stages(self):
        f = self.features
        return [("stem", [f.conv0, f.norm0]), ("block1", [f.denseblock1, f.transition1]),
                ("block2", [f.denseblock2, f.transition2]), ("block3", [f.denseblock3, f.transition3]),
                ("block4", [f.denseblock4, f.norm5])]


def _channels(init: int, growth: int, blocks) -> tuple[int, ...]:
    channels, out = init, [init]
    for index, layers in enumerate(blocks):
        channels += layers * growth
        out.append(channels)
        if index < len(blocks) - 1:
            channels //= 2
    return tuple(out)


SPECS = (BackboneSpec(
    name="densenet121", family="densenet", builder=lambda dims, in_channels, **arch: DenseNetBackbone(
        dims, in_channels, **arch),
    feature_channels=_channels(64, 32, (6, 12, 24, 16)), first_conv="features.conv0.weight",
    classifier_prefixes=("classifier.",), sources={"imagenet": {2: "densenet121-imagenet"}},
    description="DenseNet-121 (Huang et al.), MONAI implementation",
), BackboneSpec(
    name="tiny-densenet", family="densenet",
    builder=lambda dims, in_channels, **arch: DenseNetBackbone(dims, in_channels, 8, 4, (1, 1, 1, 1)),
    feature_channels=_channels(8, 4, (1, 1, 1, 1)), first_conv="features.conv0.weight",
    classifier_prefixes=("classifier.",), description="1-layer dense blocks: for tests",
))
