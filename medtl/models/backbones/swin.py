"""The Swin transformer encoder of MONAI's SwinUNETR (2D and 3D)."""

from __future__ import annotations

import torch
from monai.networks.nets.swin_unetr import SwinTransformer

from .spec import BackboneSpec


class SwinBackbone(SwinTransformer):
    """MONAI ``SwinTransformer`` (SwinUNETR's ``swinViT``): five LayerNorm-ed maps at strides 2-32,
    ``feature_size`` x 1, 2, 4, 8, 16 channels. Sizes need not divide the 7-voxel window (MONAI pads)."""

    def __init__(self, dims: int, in_channels: int, feature_size: int = 48, depths=(2, 2, 2, 2),
                 heads=(3, 6, 12, 24), window: int = 7):
        super().__init__(in_chans=in_channels, embed_dim=feature_size, window_size=(window,) * dims,
                         patch_size=(2,) * dims, depths=tuple(depths), num_heads=tuple(heads), spatial_dims=dims)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return super().forward(x, normalize=True)

    def stages(self):
        return [("embed", [self.patch_embed]), ("layers1", [self.layers1[0]]), ("layers2", [self.layers2[0]]),
                ("layers3", [self.layers3[0]]), ("layers4", [self.layers4[0]])]


def _spec(name: str, feature_size: int, heads, sources: dict, description: str) -> BackboneSpec:
    return BackboneSpec(
        name=name, family="swin", first_conv="patch_embed.proj.weight",
        builder=lambda dims, in_channels, **arch: SwinBackbone(
            dims, in_channels, **{"feature_size": feature_size, "heads": heads, **arch}),
        feature_channels=tuple(feature_size * 2**i for i in range(5)), sources=sources, description=description)


SPECS = (
    _spec("swin-unetr", 48, (3, 6, 12, 24), {"swin-ssl": {3: "swin-unetr-ssl"}, "swin-dae": {3: "swin-unetr-dae"}},
          "SwinUNETR's Swin encoder (Hatamizadeh et al.), MONAI; self-supervised weights on 5,050 CT volumes"),
    _spec("tiny-swin", 12, (3, 3, 3, 3), {}, "Swin encoder with 12 channels: for tests"),
)
