"""Layouts of the self-supervised SwinUNETR encoder files (MONAI research contributions)."""

from __future__ import annotations

import re

from . import Renamed

_PRETEXT = "self-supervised pretext head or reconstruction decoder, not part of the encoder"


def swinvit_ssl(state: dict) -> Renamed:
    """``model_swinvit.pt`` (Tang et al. 2022): the encoder as ``module.<name>`` (the loader strips ``module.``)
    with ``mlp.fc1/fc2`` for MONAI's ``mlp.linear1/linear2`` (MONAI's ``SwinUNETR.load_from`` reads it so);
    the rotation, contrastive and reconstruction heads and the final norm are dropped."""
    encoder = re.compile(r"^(patch_embed|layers[1-4])\.")
    out, dropped = {}, {}
    for key, value in state.items():
        if encoder.match(key):
            out[key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")] = value
        elif key.startswith(("rotation_head", "contrastive_head", "conv.", "norm.")):
            dropped[key] = _PRETEXT
        else:
            out[key] = value
    return Renamed(out, dropped)


def swin_dae(state: dict) -> Renamed:
    """``ssl_pretrained_weights.pth`` (disruptive autoencoders, Valanarasu et al. 2023), read with MONAI's
    own ``filter_swinunetr``: ``encoder.*`` becomes the encoder, the rest is the pretext decoder."""
    from monai.networks.nets.swin_unetr import filter_swinunetr

    out, dropped = {}, {}
    for key, value in state.items():
        mapped = filter_swinunetr(key, value)
        if mapped is None:
            dropped[key] = _PRETEXT
        else:
            out[mapped[0].removeprefix("swinViT.")] = mapped[1]
    return Renamed(out, dropped)


LAYOUTS = {"swinvit-ssl": swinvit_ssl, "swin-dae": swin_dae}
