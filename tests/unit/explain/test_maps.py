"""Grad-CAM equals its definition; occlusion gives zero where the model does not look; maps are normalised."""

import numpy as np
import pytest
import torch
from torch import nn

from medtl.explain.gradcam import default_layer, gradcam_maps, unit_max
from medtl.explain.occlusion import occlusion_maps
from medtl.models import create_model


def gradcam_by_definition(model, images, classes, layer_name):
    """ReLU(sum_k mean(dy_c/dA_k) A_k), upsampled linearly, divided by its max: written out with hooks."""
    layer = dict(model.named_modules())[layer_name]
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    maps = []
    for image, c in zip(images, classes):
        logits = model(image[None])
        activation = store["a"]
        grad = torch.autograd.grad(logits[0, c], activation)[0]
        weights = grad.mean(dim=tuple(range(2, grad.dim())), keepdim=True)
        cam = torch.relu((weights * activation).sum(1, keepdim=True))
        mode = "bilinear" if image.dim() == 3 else "trilinear"
        cam = nn.functional.interpolate(cam, size=image.shape[1:], mode=mode, align_corners=False)[0, 0]
        maps.append((cam / cam.max() if cam.max() > 0 else cam).detach().numpy())
    handle.remove()
    return np.stack(maps)


@pytest.mark.parametrize("dims,shape", [(2, (48, 40)), (3, (12, 32, 32))])
def test_gradcam_equals_its_definition(dims, shape):
    torch.manual_seed(dims)
    model = create_model("tiny-resnet", dims=dims, num_classes=3, pretrained="none").eval()
    with torch.no_grad():  # spread BatchNorm statistics, so the maps are not degenerate
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                module.running_mean.normal_(0, 0.1)
    images = torch.randn(4, 1, *shape)
    classes = [0, 2, 1, 2]
    layer = default_layer(model, shape)
    ours = gradcam_maps(model, images, classes)
    expected = gradcam_by_definition(model, images, classes, layer)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert ours.shape == (4, *shape)
    assert all(m.max() == pytest.approx(1.0) or m.max() == 0 for m in ours)  # 1 = most important


def test_normaliser_keeps_the_most_important_voxel_at_one():
    maps = torch.tensor([[[[0.0, 2.0], [1.0, 4.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    out = unit_max(maps)
    assert out[0, 0, 1, 1] == 1 and out[0, 0, 0, 0] == 0 and out[0, 0, 0, 1] == 0.5  # not inverted
    assert torch.equal(out[1], maps[1])


def test_default_layer_is_the_deepest_stage_with_spatial_extent():
    model = create_model("resnet18", dims=2, num_classes=2, pretrained="none")
    assert default_layer(model, (224, 224)) == "backbone.layer4"
    assert default_layer(model, (64, 64)) == "backbone.layer3"


class LeftHalf(nn.Module):
    """Looks only at the left half of the image."""

    def forward(self, x):
        evidence = x[..., : x.shape[-1] // 2].mean(dim=tuple(range(1, x.dim())))
        return torch.stack([-evidence, evidence], dim=1) * 5


@pytest.mark.parametrize("shape", [(32, 32), (8, 16, 16)])
def test_occluding_a_region_the_model_ignores_gives_zero_attribution(shape):
    torch.manual_seed(0)
    image = torch.rand(2, 1, *shape) + torch.linspace(0, 1, shape[-1])  # brighter to the right
    maps = occlusion_maps(LeftHalf(), image, [1, 1], size=4, overlap=0.5)
    right = maps[..., shape[-1] // 2 + 4:]  # boxes there never reach the left half
    assert np.abs(right).max() < 1e-7
    left = maps[..., : shape[-1] // 2 - 4]
    assert np.abs(left).max() > 1e-4


def test_pointing_game_counts_hits_misses_and_flat_maps():
    from medtl.explain.sanity import pointing_game

    mask = np.zeros((8, 8))
    mask[2:4, 2:4] = 1
    hit, miss, flat = np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8))
    hit[3, 3], miss[7, 7] = 1, 1
    result = pointing_game(np.stack([hit, miss, flat, hit]), [mask, mask, mask, np.zeros((8, 8))])
    assert (result["n"], result["hits"], result["n_flat_maps"]) == (3, 1, 1)  # the empty mask does not count
    assert result["share"] == pytest.approx(1 / 3) and result["chance"] == pytest.approx(4 / 64)


def test_randomising_the_top_layers_changes_them_and_nothing_below():
    from medtl.explain.sanity import randomised_top

    torch.manual_seed(0)
    model = create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none").eval()
    copy = randomised_top(model, seed=1)
    last = model.stages()[-1][0]
    for (name, a), b in zip(model.state_dict().items(), copy.state_dict().values()):
        if not a.is_floating_point() or "running" in name:
            continue
        top = name.startswith("head.") or f".{last}." in f".{name}"
        assert torch.equal(a, b) != top or (a == 0).all() or (a == 1).all(), name
