"""Backbone registry: every backbone builds with its documented features; unknown names suggest the closest."""

import pytest
import torch

import medtl
from medtl.errors import ConfigError, MedtlError
from medtl.models.backbones import get_backbone_spec, list_backbones

SIZES = {2: (64, 64), 3: (32, 32, 32)}


@pytest.mark.parametrize("spec", list_backbones(), ids=lambda s: s.name)
@pytest.mark.parametrize("dims", [2, 3])
def test_every_backbone_builds_with_documented_features(spec, dims):
    for channels in (1, 3):
        net = spec.builder(dims, channels).eval()
        x = torch.randn(1, channels, *SIZES[dims])
        with torch.no_grad():
            features = net(x)
        assert tuple(f.shape[1] for f in features) == spec.feature_channels
        assert tuple(SIZES[dims][0] // f.shape[2] for f in features) == spec.reductions
        staged = {id(p) for _, modules in net.stages() for m in modules for p in m.parameters()}
        assert staged == {id(p) for p in net.parameters()}, "every parameter belongs to a stage"


def test_unknown_backbone_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        get_backbone_spec("resnet81")


def test_medicalnet_is_3d_only():
    with pytest.raises(MedtlError, match="3D"):
        medtl.create_model("resnet18", dims=2, num_classes=2, pretrained="medicalnet")
