import itertools

import numpy as np
import pytest
import torch
from torch import nn

from medtl.config import load_config
from medtl.models.sliding import aggregated_window_logits, network_logits, sliding_window_logits, window_starts

CPU = torch.device("cpu")


def patch_config(dims=3, size=16, overlap=0.5, blend="gaussian", **extra):
    sets = [f"data.dims={dims}", "data.mode=patch", f"data.patch_size={size}",
            f"data.sliding_window.overlap={overlap}", f"data.sliding_window.blend={blend}",
            "data.sliding_window.batch_size=3", *[f"data.{k}={v}" for k, v in extra.items()]]
    return load_config(None, sets).data


class Pointwise(nn.Module):
    """Fully convolutional with a 1-voxel receptive field: any window sees exactly what the whole volume sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv3d(1, 8, 1), nn.ReLU(), nn.Conv3d(8, 3, 1))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", [0.25, 0.5, 0.75])
def test_sliding_window_equals_the_whole_volume_output_of_a_fully_convolutional_net(blend, overlap):
    model = Pointwise().eval()
    volume = torch.randn(1, 1, 21, 37, 30)  # not a multiple of the window on any axis
    with torch.no_grad():
        whole = model(volume)
        windows = sliding_window_logits(model, volume, patch_config(overlap=overlap, blend=blend), CPU)
    assert windows.shape == whole.shape
    assert torch.allclose(windows, whole, atol=1e-5)


def test_a_volume_smaller_than_the_window_is_padded_and_cropped_back():
    model = Pointwise().eval()
    volume = torch.randn(1, 1, 9, 12, 30)
    with torch.no_grad():
        windows = sliding_window_logits(model, volume, patch_config(size=16), CPU)
    assert windows.shape == (1, 3, 9, 12, 30)
    assert torch.allclose(windows, model(volume), atol=1e-5)


def test_medtl_sliding_window_is_monais_on_a_medtl_segmentation_model():
    from monai.inferers import sliding_window_inference

    from medtl.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", dims=3, num_classes=2, task="segmentation", pretrained="none").eval()
    volume = torch.randn(1, 1, 40, 48, 33)
    data = patch_config(size=32, overlap=0.5)
    with torch.no_grad():
        ours = network_logits(model, volume, data, CPU)
        monai = sliding_window_inference(volume, (32, 32, 32), 3, model, overlap=0.5, mode="gaussian",
                                         padding_mode="replicate")
    assert torch.allclose(ours, monai, atol=1e-5)


@pytest.mark.parametrize("size,patch,overlap", [(37, 16, 0.5), (16, 16, 0.5), (10, 16, 0.25), (100, 32, 0.0),
                                                (33, 32, 0.9)])
def test_windows_cover_every_voxel_and_stay_inside(size, patch, overlap):
    starts = window_starts(size, patch, overlap)
    covered = np.zeros(max(size, patch), bool)
    for start in starts:
        assert 0 <= start and (start + patch <= size or start == 0)
        covered[start:start + patch] = True
    assert covered[:size].all()
    assert starts == sorted(set(starts))


class MeanClassifier(nn.Module):
    """Logits = [mean, -mean] of the input: window aggregation is checkable by hand."""

    def forward(self, x):
        m = x.flatten(1).mean(1)
        return torch.stack([m, -m], 1)


@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_classification_windows_are_reduced_by_the_configured_rule(aggregate):
    data = patch_config(dims=2, size=8, overlap=0.0, aggregate=aggregate)
    image = torch.zeros(1, 1, 16, 16)
    image[0, 0, :8, :8] = 4.0  # one of four windows is bright
    logits = aggregated_window_logits(MeanClassifier(), image, data, CPU)
    expected = 1.0 if aggregate == "mean" else 4.0
    assert logits.shape == (1, 2) and logits[0, 0].item() == pytest.approx(expected)


def test_window_aggregation_pads_a_small_image_and_matches_windows_taken_by_hand():
    data = patch_config(dims=2, size=8, overlap=0.5)
    torch.manual_seed(1)
    image = torch.randn(2, 1, 12, 6)
    logits = aggregated_window_logits(MeanClassifier(), image, data, CPU)
    for n in range(2):
        padded = nn.functional.pad(image[n:n + 1], (0, 2, 0, 0), mode="replicate")[0]
        corners = itertools.product(window_starts(12, 8, 0.5), window_starts(8, 8, 0.5))
        means = [padded[:, r:r + 8, c:c + 8].mean() for r, c in corners]
        assert logits[n, 0].item() == pytest.approx(float(torch.stack(means).mean()), abs=1e-6)


def test_fixed_size_inputs_take_one_forward_pass():
    calls = []

    class Counting(MeanClassifier):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return super().forward(x)

    data = load_config(None, ["data.image_size=16"]).data
    network_logits(Counting(), torch.randn(3, 1, 16, 16), data, CPU)
    assert calls == [(3, 1, 16, 16)]
