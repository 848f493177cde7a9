"""Layouts of vision-transformer files: timm / DINOv2 (original), Hugging Face ``ViTModel`` and ``Dinov2Model``."""

from __future__ import annotations

import re

import torch

from . import Renamed, strip_prefix

_TOKENS = {"cls_token": "patch_embed.cls_token", "pos_embed": "patch_embed.pos_embed",
           "register_tokens": "patch_embed.register_tokens"}
_MASK = "masked-image-modelling token of self-supervised pretraining, unused when fine-tuning"


def timm_vit(state: dict) -> Renamed:
    """timm ViTs and the original DINOv2 files (``dinov2_vits14_pretrain.pth``): medtl's names, with the tokens
    at the top level; ``mask_token`` (DINOv2's iBOT token) is dropped."""
    out, dropped = {}, {}
    for key, value in state.items():
        if key == "mask_token":
            dropped[key] = _MASK
        else:
            out[_TOKENS.get(key, key)] = value
    return Renamed(out, dropped)


# Hugging Face names per block, published (legacy) and in-memory (transformers >= 5) spellings
_HF_BLOCK = {
    "norm1": "norm1", "norm2": "norm2", "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj", "attention.o_proj": "attn.proj",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
}
_QKV = {"attention.attention.query": "q", "attention.attention.key": "k", "attention.attention.value": "v",
        "attention.q_proj": "q", "attention.k_proj": "k", "attention.v_proj": "v"}
_HF_EMBED = {"embeddings.cls_token": "patch_embed.cls_token", "embeddings.position_embeddings": "patch_embed.pos_embed",
             "embeddings.register_tokens": "patch_embed.register_tokens",
             "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
             "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
             "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}
_LAYER = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias|lambda1)$")


def hugging_face_vit(state: dict) -> Renamed:
    """``ViTModel`` / ``Dinov2Model`` / ``Dinov2WithRegistersModel`` safetensors (``google/vit-*``,
    ``facebook/dinov2-*``, ``microsoft/rad-dino``), with or without the ``vit.`` / ``dinov2.`` prefix of the
    classification wrappers. The separate query, key and value projections become one ``qkv``."""
    state = strip_prefix(state, "dinov2.", "vit.")
    out, dropped, qkv = {}, {}, {}
    for key, value in state.items():
        if key in _HF_EMBED:
            out[_HF_EMBED[key]] = value
            continue
        if key == "embeddings.mask_token":
            dropped[key] = _MASK
            continue
        if key.startswith(("pooler.", "classifier.")):
            dropped[key] = "Hugging Face pooler / classifier, replaced by the task head"
            continue
        match = _LAYER.match(key)
        if not match:
            out[key] = value  # reported as unexpected
            continue
        index, name, kind = match.groups()
        if name in _QKV:
            qkv.setdefault((index, kind), {})[_QKV[name]] = value
        elif f"{name}.{kind}" in _HF_BLOCK:  # LayerScale: "layer_scale1.lambda1"
            out[f"blocks.{index}.{_HF_BLOCK[f'{name}.{kind}']}"] = value
        elif name in _HF_BLOCK:
            out[f"blocks.{index}.{_HF_BLOCK[name]}.{kind}"] = value
        else:
            out[key] = value
    for (index, kind), parts in qkv.items():
        if set(parts) == {"q", "k", "v"}:
            out[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
        else:  # an incomplete triple: the fused tensor is missing, named by the strict load
            out.update({f"blocks.{index}.attn.{p}.{kind}": v for p, v in parts.items()})
    return Renamed(out, dropped)


LAYOUTS = {"timm-vit": timm_vit, "hf-vit": hugging_face_vit}
