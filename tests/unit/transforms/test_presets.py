"""Preprocessing: the network sees exactly data.image_size, intensities in the documented range."""

import numpy as np
import pytest
import torch

from medtl.config import load_config
from medtl.io.volume import Volume
from medtl.transforms.network_input import network_input
from medtl.transforms.presets import GRAY_MEAN, GRAY_STD, scale_percentiles


@pytest.mark.parametrize("dims, size, shape", [(2, "[40,56]", (1, 90, 70)), (2, "33", (1, 64, 64)),
                                               (3, "[8,16,24]", (20, 30, 40)), (3, "12", (5, 50, 60))])
def test_network_input_has_the_configured_size(dims, size, shape):
    config = load_config(None, [f"data.dims={dims}", f"data.image_size={size}"])
    array = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    volume = Volume(array if dims == 3 else array, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    image = network_input(volume, config, "case").sample["image"]
    assert tuple(image.shape) == (1, *config.data.image_size)


def test_percentile_scaling_matches_monai_and_window_clips():
    from monai.transforms import ScaleIntensityRangePercentiles

    values = np.random.default_rng(1).gamma(2.0, 50.0, size=(1, 64, 64)).astype(np.float32)
    ours = scale_percentiles("image", 0.5, 99.5)({"image": torch.as_tensor(values)})["image"]
    reference = ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True)(torch.as_tensor(values))
    assert np.allclose(np.asarray(ours), np.asarray(reference), atol=1e-5)
    config = load_config(None, ["data.intensity=window", "data.window=[0,100]", "data.image_size=8"])
    volume = Volume(np.full((1, 8, 8), 1000.0, np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    image = np.asarray(network_input(volume, config, "case").sample["image"])
    assert np.allclose(image, (1.0 - GRAY_MEAN) / GRAY_STD)  # clipped at the window's top, then normalised
