"""ResNet backbones on MONAI's ResNet (torchvision parameter names, 2D and 3D)."""

from __future__ import annotations

from dataclasses import replace

import torch
from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetBottleneck

from ..group_norm import to_group_norm
from .spec import BackboneSpec

_DEPTHS = {18: (ResNetBlock, [2, 2, 2, 2]), 34: (ResNetBlock, [3, 4, 6, 3]), 50: (ResNetBottleneck, [3, 4, 6, 3])}


class ResNetBackbone(ResNet):
    """MONAI ResNet without its classifier, returning the stem and the four stage outputs."""

    def __init__(self, dims: int, in_channels: int, block=ResNetBlock, layers=(2, 2, 2, 2),
                 widths=(64, 128, 256, 512), shortcut_type: str = "B", bias_downsample: bool = False):
        # stride-2 7x7 stem, bias-free 1x1 downsample: the torchvision (ImageNet) layout
        super().__init__(block=block, layers=list(layers), block_inplanes=list(widths), spatial_dims=dims,
                         n_input_channels=in_channels, conv1_t_size=7, conv1_t_stride=2,
                         shortcut_type=shortcut_type, feed_forward=False, bias_downsample=bias_downsample)
        del self.fc, self.avgpool

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self.bn1(self.conv1(x)))
        features = [x]
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features

    def stages(self):
        return [("stem", [self.conv1, self.bn1]), ("layer1", [self.layer1]), ("layer2", [self.layer2]),
                ("layer3", [self.layer3]), ("layer4", [self.layer4])]


def _builder(depth: int):
    block, layers = _DEPTHS[depth]

    def build(dims: int, in_channels: int, **arch) -> ResNetBackbone:
        return ResNetBackbone(dims, in_channels, block, layers, **arch)
    return build


def _tiny(dims: int, in_channels: int, **arch) -> ResNetBackbone:
    return ResNetBackbone(dims, in_channels, ResNetBlock, (1, 1, 1, 1), (8, 16, 32, 64), **arch)


def _spec(depth: int) -> BackboneSpec:
    expansion = 4 if depth == 50 else 1
    return BackboneSpec(
        name=f"resnet{depth}", family="resnet", builder=_builder(depth),
        feature_channels=(64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion),
        classifier_prefixes=("fc.",),
        sources={"imagenet": {2: f"resnet{depth}-imagenet"}, "medicalnet": {3: f"resnet{depth}-medicalnet"}},
        description=f"ResNet-{depth} (He et al.), MONAI implementation",
    )


def _group_norm(spec: BackboneSpec) -> BackboneSpec:
    """The GroupNorm variant of a ResNet (``resnet18-gn``): per-image normalisation, for DP-SGD. No published
    weights (ImageNet's BatchNorm statistics have no GroupNorm counterpart): start from none or a source stage."""
    def build(dims: int, in_channels: int, **arch) -> ResNetBackbone:
        return to_group_norm(spec.builder(dims, in_channels, **arch))
    return replace(spec, name=f"{spec.name}-gn", builder=build, sources={}, norm="group",
                   description=f"{spec.description}, GroupNorm (32 groups) instead of BatchNorm: for DP-SGD")


_TINY = BackboneSpec(name="tiny-resnet", family="resnet", builder=_tiny, feature_channels=(8, 8, 16, 32, 64),
                     classifier_prefixes=("fc.",), description="4-block ResNet, 8-64 channels: for tests and smoke runs")
_PLAIN = (*(_spec(depth) for depth in (18, 34, 50)), _TINY)
SPECS = (*_PLAIN, *(_group_norm(spec) for spec in _PLAIN))
