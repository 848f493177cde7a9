"""The SegResNet encoder (MONAI ``SegResEncoder``, the architecture of CT-FM), 2D and 3D."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets.segresnet_ds import SegResEncoder

from .spec import BackboneSpec


class SegResNetBackbone(SegResEncoder):
    """MONAI ``SegResEncoder`` with five levels (strides 1-16).

    The contract wants maps at strides 2-32: the levels at strides 2, 4, 8 and 16 are
    returned, then the stride-16 map average-pooled by 2 (no parameters; its global mean is
    the stride-16 map's). The full-resolution level is not a decoder skip.
    """

    def __init__(self, dims: int, in_channels: int, init_filters: int = 32, blocks_down=(1, 2, 2, 4, 4),
                 norm: str = "batch"):
        super().__init__(spatial_dims=dims, init_filters=init_filters, in_channels=in_channels,
                         blocks_down=tuple(blocks_down), norm=norm)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = self._forward(x)
        pool = F.avg_pool2d if x.dim() == 4 else F.avg_pool3d
        kernel = tuple(2 if s > 1 else 1 for s in levels[-1].shape[2:])  # a 1-voxel axis stays (small inputs)
        return [*levels[1:], pool(levels[-1], kernel, kernel, ceil_mode=True)]

    def stages(self):
        # a level's stage: the downsampling into it and its blocks (the blocks' output is the level's map)
        return [("stem", [self.conv_init, self.layers[0]["blocks"]]),
                *((f"level{i}", [self.layers[i - 1]["downsample"], self.layers[i]["blocks"]])
                  for i in range(1, len(self.layers)))]


def _spec(name: str, init: int, blocks, sources: dict, description: str) -> BackboneSpec:
    widths = [init * 2**i for i in range(len(blocks))]
    return BackboneSpec(
        name=name, family="segresnet", first_conv="conv_init.weight",
        builder=lambda dims, in_channels, **arch: SegResNetBackbone(
            dims, in_channels, **{"init_filters": init, "blocks_down": blocks, **arch}),
        feature_channels=(*widths[1:], widths[-1]), sources=sources, description=description)


SPECS = (
    _spec("segresnet", 32, (1, 2, 2, 4, 4), {"ct-fm": {3: "ct-fm-segresnet"}},
          "SegResNet encoder (Myronenko), MONAI SegResEncoder; CT-FM weights: contrastive on 148k CTs"),
    _spec("tiny-segresnet", 8, (1, 1, 1, 1, 1), {}, "SegResNet encoder with 8-128 channels: for tests"),
)
