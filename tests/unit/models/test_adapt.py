"""Adaptation of pretrained weights is exact; heads are reused only for the same classes."""


import pytest
import torch
from safetensors.torch import save_file

import medtl
from medtl.errors import MedtlError
from medtl.models.adapt import adapt_input_channels, inflate_kernel


def medtl_checkpoint(model, path, **metadata):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if str(path).endswith(".safetensors"):
        save_file(state, str(path), metadata={k: str(v) for k, v in metadata.items()})
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_sum_adaptation_is_exact(tmp_path, suffix):
    rgb = medtl.create_model("tiny-resnet", dims=2, num_classes=3, in_channels=3).eval()
    path = medtl_checkpoint(rgb, tmp_path / f"rgb{suffix}", backbone="tiny-resnet")
    gray = medtl.create_model("tiny-resnet", dims=2, num_classes=3, in_channels=1, pretrained=str(path)).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gray(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-5, rtol=1e-5)
    assert "head.fc.weight" in gray.adaptation.loaded


def test_six_channel_tiling_is_exact_on_repeated_input(tmp_path):
    rgb = medtl.create_model("tiny-resnet", dims=2, num_classes=2, in_channels=3).eval()
    path = medtl_checkpoint(rgb, tmp_path / "rgb.pt")
    six = medtl.create_model("tiny-resnet", dims=2, num_classes=2, in_channels=6, pretrained=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(six(torch.cat([x, x], 1)), rgb(x), atol=1e-5, rtol=1e-5)


def test_center_inflation_is_exact_on_depth_constant_volume(tmp_path):
    flat = medtl.create_model("tiny-resnet", dims=2, num_classes=2).eval()
    path = medtl_checkpoint(flat, tmp_path / "flat.pt")
    deep = medtl.create_model("tiny-resnet", dims=3, num_classes=2, pretrained=str(path), inflate="center").eval()
    x = torch.randn(2, 1, 64, 64)
    volume = x.unsqueeze(2).repeat(1, 1, 16, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(deep(volume), flat(x), atol=1e-5, rtol=1e-4)
    assert deep.adaptation.adapted["backbone.conv1.weight"] == "inflated 2D->3D (center, depth 7)"


def test_kernel_adaptation_properties():
    weight = torch.randn(8, 3, 3, 3)
    assert torch.allclose(adapt_input_channels(weight, 1, "mean")[0], weight.mean(1, keepdim=True))
    assert torch.equal(adapt_input_channels(weight, 1, "first")[0], weight[:, :1])
    assert adapt_input_channels(weight, 1, "random")[0].shape == (8, 1, 3, 3)
    inflated = inflate_kernel(weight, 5, "mean")
    assert inflated.shape == (8, 3, 5, 3, 3)
    assert torch.allclose(inflated.sum(2), weight, atol=1e-6)


def test_head_reinitialised_when_classes_differ(tmp_path):
    source = medtl.create_model("tiny-resnet", dims=2, num_classes=5)
    path = medtl_checkpoint(source, tmp_path / "s.safetensors", backbone="tiny-resnet", num_classes=5)
    target = medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained=str(path))
    assert "re-initialised" in target.adaptation.new["head.*"] and "5 outputs vs 2" in target.adaptation.new["head.*"]
    assert len(target.adaptation.loaded) == len(source.backbone.state_dict())


def test_unexplained_missing_key_is_an_error(tmp_path):
    state = medtl.create_model("tiny-resnet", dims=2, num_classes=2).backbone.state_dict()
    del state["layer4.0.conv1.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(MedtlError, match="layer4.0.conv1.weight"):
        medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained=str(tmp_path / "partial.pt"))


def test_checkpoint_of_another_backbone_is_refused(tmp_path):
    model = medtl.create_model("tiny-densenet", dims=2, num_classes=2)
    path = medtl_checkpoint(model, tmp_path / "d.safetensors", backbone="tiny-densenet")
    with pytest.raises(MedtlError, match="model.backbone=tiny-densenet"):
        medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained=str(path))
