"""Vision transformers (ViT, DINOv2 / RAD-DINO), 2D and 3D, with a parameter-free multi-scale neck.

The parameter names follow the timm / DINOv2 layout (``blocks.N.attn.qkv``, ``ls1.gamma``,
...), except that the class token, register tokens and position table live in
``patch_embed`` so the embedding is one stage for gradual unfreezing. Position tables are
interpolated to the input's token grid (bicubic in 2D, trilinear in 3D, in float32, as
DINOv2 does), so any input size works. A 3D table is ``pos_depth`` (8) deep; 2D weights fill
it by repeating their table along depth.

Neck (so the U-Net decoder and the pooled classification head work unchanged): the token
grids after blocks ``depth/4``, ``depth/2``, ``3*depth/4`` and ``depth`` (the last after the
final LayerNorm) are resized to strides 2 and 4 (first tap), 8, 16 and 32: average pooling
where the map shrinks by whole factors, (bi/tri)linear interpolation otherwise. The neck has no
parameters, so a ``linear`` arm trains exactly the head. The classification head pools the
stride-32 map, which is the mean of the final patch tokens when the grid divides evenly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .spec import BackboneSpec

REDUCTIONS = (2, 4, 8, 16, 32)


class PatchEmbedding(nn.Module):
    """Patch projection plus class token, optional register tokens and the position table."""

    def __init__(self, dims: int, in_channels: int, dim: int, patch: int, pos_grid: int, registers: int,
                 antialias: bool = False, pos_depth: int = 8):
        super().__init__()
        self.antialias = antialias  # DINOv2 with registers resizes its table with antialiasing (PIL's bicubic)
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.proj = conv(in_channels, dim, kernel_size=patch, stride=patch)
        self.grid = (pos_grid,) * 2 if dims == 2 else (pos_depth, pos_grid, pos_grid)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, dim)) if registers else None
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + math.prod(self.grid), dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def positions(self, grid: tuple[int, ...]) -> torch.Tensor:
        """The position table for a token grid of this size (the stored table, resized when it differs)."""
        if tuple(grid) == self.grid:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        table = self.pos_embed[:, 1:].reshape(1, *self.grid, dim).movedim(-1, 1)
        mode = "bicubic" if len(grid) == 2 else "trilinear"
        resized = F.interpolate(table.float(), size=tuple(grid), mode=mode, align_corners=False,
                                antialias=self.antialias and len(grid) == 2)
        resized = resized.to(self.pos_embed.dtype).flatten(2).transpose(1, 2)
        return torch.cat([self.pos_embed[:, :1], resized], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        patches = self.proj(x)
        grid = tuple(patches.shape[2:])
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches.flatten(2).transpose(1, 2)], dim=1)
        tokens = tokens + self.positions(grid)
        if self.register_tokens is not None:  # DINOv2 with registers: after the class token, no position
            tokens = torch.cat([tokens[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), tokens[:, 1:]], dim=1)
        return tokens, grid


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        return self.proj(rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)"))


class LayerScale(nn.Module):
    """Per-channel residual scale (DINOv2)."""

    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """Two linear layers with GELU between."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (optional LayerScale on both residual branches)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float, layerscale: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim) if layerscale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim) if layerscale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformerBackbone(nn.Module):
    """ViT encoder returning five feature maps at strides 2-32 (see the module docstring for the neck)."""

    def __init__(self, dims: int, in_channels: int, dim: int = 384, depth: int = 12, heads: int = 6,
                 patch: int = 16, pos_grid: int = 14, mlp_ratio: float = 4.0, eps: float = 1e-6,
                 layerscale: bool = False, registers: int = 0, antialias: bool = False, pos_depth: int = 8):
        super().__init__()
        if depth < 4:
            raise ValueError("a ViT backbone needs at least 4 blocks (one per neck tap)")
        self.dims, self.registers = dims, registers
        self.patch_embed = PatchEmbedding(dims, in_channels, dim, patch, pos_grid, registers, antialias, pos_depth)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, eps, layerscale) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.taps = tuple(depth * q // 4 - 1 for q in (1, 2, 3, 4))
        # the final tokens as a (B, D, *grid) map: what Grad-CAM hooks (tokens are not a grid)
        self.token_grid = nn.Identity()

    cam_layer = "token_grid"

    def tokens(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, ...]]:
        """Token sequences ``(B, 1 + registers + N, D)`` after each tapped block, the last normalised."""
        x, grid = self.patch_embed(x)
        out = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.taps:
                out.append(self.norm(x) if index == self.taps[-1] else x)
        return out, grid

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = x.shape[2:]
        taps, grid = self.tokens(x)
        skip = 1 + self.registers
        maps = [rearrange(t[:, skip:], "b n d -> b d n").reshape(t.shape[0], -1, *grid) for t in taps]
        maps[-1] = self.token_grid(maps[-1])
        sources = (maps[0], maps[0], maps[1], maps[2], maps[3])
        return [_resized(m, tuple(max(1, s // r) for s in size)) for m, r in zip(sources, REDUCTIONS)]

    def stages(self):
        quarter = [self.blocks[a + 1:b + 1] for a, b in zip((-1, *self.taps[:-1]), self.taps)]
        return [("embed", [self.patch_embed]), ("blocks1", list(quarter[0])), ("blocks2", list(quarter[1])),
                ("blocks3", list(quarter[2])), ("blocks4", [*quarter[3], self.norm])]

    def adapt_pretrained(self, key: str, tensor: torch.Tensor, wanted: torch.Size) -> tuple[torch.Tensor, str] | None:
        """A 2D position table under a 3D model: the 2D table repeated along depth (same in-plane grid)."""
        if key != "patch_embed.pos_embed" or tensor.shape == wanted or self.dims != 3:
            return None
        side = math.isqrt(tensor.shape[1] - 1)
        depth = (wanted[1] - 1) // (side * side)
        if side * side + 1 != tensor.shape[1] or depth * side * side + 1 != wanted[1]:
            return None
        plane = tensor[:, 1:].reshape(1, 1, side * side, -1).expand(1, depth, -1, -1).reshape(1, -1, tensor.shape[2])
        return torch.cat([tensor[:, :1], plane], dim=1), f"2D position table ({side}x{side}) repeated over {depth} depths"


def _resized(feature: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Average pooling when the map shrinks by whole factors, else (bi/tri)linear interpolation (both export to
    ONNX in 2D and 3D; adaptive pooling to sizes other than 1 does not in 3D)."""
    grid = tuple(feature.shape[2:])
    if grid == size:
        return feature
    if all(s <= g and g % s == 0 for s, g in zip(size, grid)):
        factors = tuple(g // s for s, g in zip(size, grid))
        return (F.avg_pool2d if feature.dim() == 4 else F.avg_pool3d)(feature, factors, factors)
    return F.interpolate(feature, size=size, mode="bilinear" if feature.dim() == 4 else "trilinear",
                         align_corners=False)


def _builder(**fixed):
    def build(dims: int, in_channels: int, **arch) -> VisionTransformerBackbone:
        return VisionTransformerBackbone(dims, in_channels, **{**fixed, **arch})
    return build


_DROP = ("head.", "fc_norm.", "head_drop.")


def _spec(name: str, dim: int, heads: int, patch: int, grid: int, layerscale: bool, sources: dict,
          description: str, depth: int = 12) -> BackboneSpec:
    return BackboneSpec(
        name=name, family="vit", feature_channels=(dim,) * 5, first_conv="patch_embed.proj.weight",
        builder=_builder(dim=dim, depth=depth, heads=heads, patch=patch, pos_grid=grid, layerscale=layerscale),
        classifier_prefixes=_DROP, sources=sources, description=description)


SPECS = (
    _spec("vit-s16", 384, 6, 16, 14, False, {"imagenet": {2: "vit-s16-imagenet"}},
          "ViT-S/16 (Dosovitskiy et al.), timm layout, 22M parameters"),
    _spec("vit-b16", 768, 12, 16, 14, False, {"imagenet": {2: "vit-b16-imagenet"}},
          "ViT-B/16, timm layout, 86M parameters"),
    _spec("dinov2-vits14", 384, 6, 14, 37, True, {"dinov2": {2: "dinov2-vits14"}},
          "DINOv2 ViT-S/14 (Oquab et al.), self-supervised on LVD-142M"),
    _spec("dinov2-vitb14", 768, 12, 14, 37, True, {"dinov2": {2: "dinov2-vitb14"}, "rad-dino": {2: "rad-dino"}},
          "DINOv2 ViT-B/14; RAD-DINO (Perez-Garcia et al.) continues it on chest X-rays"),
    _spec("tiny-vit", 32, 2, 8, 4, True, {}, "4 blocks, 32 channels, 8-px patches: for tests", depth=4),
)
