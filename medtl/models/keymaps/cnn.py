"""Layouts of the convolutional backbones' files (torchvision, EfficientNet-PyTorch, MedicalNet, CT-FM,
medtl's own checkpoints)."""

from __future__ import annotations

import re

from . import Renamed, strip_prefix

# torchvision DenseNet: "denselayer1.norm1.weight" (new) or "denselayer1.norm.1.weight" (old files)
_DENSE = re.compile(r"^(.*denselayer\d+)\.(norm|relu|conv)\.?([12])\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def same_names(state: dict) -> Renamed:
    """Files whose names are already the backbone's (torchvision ResNet, EfficientNet, MedicalNet)."""
    return Renamed(dict(state))


def torchvision_densenet(state: dict) -> Renamed:
    return Renamed({_DENSE.sub(r"\1.layers.\2\3.\4", k): v for k, v in state.items()})


def medtl_checkpoint(state: dict) -> Renamed:
    """A medtl checkpoint (``backbone.*`` and ``head.*``) or a bare backbone state dict."""
    if any(k.startswith("backbone.") for k in state):
        return Renamed({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    return Renamed(dict(state))


def ct_fm(state: dict) -> Renamed:
    """CT-FM's feature extractor (lighter_zoo on MONAI ``SegResEncoder``): MONAI's names, with or without a
    wrapper prefix."""
    return Renamed(strip_prefix(state, "encoder.", "model.", "backbone."))


LAYOUTS = {"torchvision": same_names, "efficientnet": same_names, "medicalnet": same_names,
           "torchvision-densenet": torchvision_densenet, "medtl": medtl_checkpoint, "ct-fm": ct_fm}
