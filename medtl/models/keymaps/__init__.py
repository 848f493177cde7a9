"""Weight-file layouts: how a published checkpoint's tensor names map onto a medtl backbone's.

A layout is a function ``state -> Renamed`` registered by name (``WeightFile.layout`` names
it). It renames what it knows and lists what it leaves out on purpose (pretext heads,
mask tokens) with the reason; anything else it passes through, so a tensor the
backbone does not have is reported as unexpected, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...plumbing.registry import Registry


@dataclass
class Renamed:
    """A state dict in backbone names, and the source tensors deliberately not used (``{key: why}``)."""

    state: dict
    dropped: dict[str, str] = field(default_factory=dict)


def _load_layouts() -> None:
    from . import cnn, swin, vit  # a new layout: a function in one of these (or a new module named here)

    for module in (cnn, swin, vit):
        for name, function in module.LAYOUTS.items():
            KEYMAPS.register(name, function)


KEYMAPS: Registry[Callable[[dict], Renamed]] = Registry("weight layout", loader=_load_layouts)


def to_backbone_keys(state: dict, layout: str) -> Renamed:
    """Rename the tensors of a checkpoint in ``layout`` to the backbone's parameter names."""
    return KEYMAPS.get(layout, "weight file layout")(state)


def head_keys(state: dict) -> dict:
    """``head.*`` tensors of a medtl checkpoint, without the prefix."""
    return {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}


def strip_prefix(state: dict, *prefixes: str) -> dict:
    """Remove the first of ``prefixes`` that every key carries (wrappers such as ``dinov2.``, ``encoder.``)."""
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)
