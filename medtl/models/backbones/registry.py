"""Backbone registry: every ``BackboneSpec`` by name (the families' ``SPECS``, and any registered later)."""

from __future__ import annotations

from ...plumbing.registry import Registry
from .spec import BackboneSpec


def _load_families() -> None:
    from . import densenet, efficientnet, resnet, segresnet, swin, vit  # a new family: one module with SPECS

    for family in (densenet, efficientnet, resnet, segresnet, swin, vit):
        for spec in family.SPECS:
            register_backbone(spec)


BACKBONES: Registry[BackboneSpec] = Registry("backbone", loader=_load_families)


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry (a name registered twice is refused)."""
    return BACKBONES.register(spec.name, spec)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The registered spec; an unknown name fails with the closest match."""
    return BACKBONES.get(name, "model.backbone")


def list_backbones() -> list[BackboneSpec]:
    """Every registered backbone, sorted by name."""
    return list(BACKBONES)
