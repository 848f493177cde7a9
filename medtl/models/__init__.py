"""Backbones, pretrained weights, adaptation and heads."""

from .build import MedtlModel, create_model

__all__ = ["MedtlModel", "create_model"]
