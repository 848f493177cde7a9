"""Map checkpoint parameter names onto medtl backbone names, per source layout."""

from __future__ import annotations

import re

# torchvision DenseNet: "denselayer1.norm1.weight" (new) or "denselayer1.norm.1.weight" (old files)
_DENSE = re.compile(r"^(.*denselayer\d+)\.(norm|relu|conv)\.?([12])\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def to_backbone_keys(state: dict, layout: str) -> dict:
    """Rename keys of a source checkpoint to the backbone's parameter names."""
    if layout == "torchvision-densenet":
        return {_DENSE.sub(r"\1.layers.\2\3.\4", k): v for k, v in state.items()}
    if layout == "medtl":
        # a medtl checkpoint (backbone.* and head.*) or a bare backbone state dict
        if any(k.startswith("backbone.") for k in state):
            return {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        return dict(state)
    return dict(state)


def head_keys(state: dict) -> dict:
    """``head.*`` tensors of a medtl checkpoint, without the prefix."""
    return {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
