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


def _volume(array):
    return Volume(array, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))


def test_patch_mode_keeps_the_native_extent_at_the_configured_spacing():
    config = load_config(None, ["data.dims=3", "data.mode=patch", "data.patch_size=32", "data.spacing=[1,1,1]"])
    image = network_input(_volume(np.random.default_rng(0).normal(size=(20, 50, 70)).astype(np.float32)), config,
                          "case").sample["image"]
    assert tuple(image.shape) == (1, 39, 50, 70)  # 20 slices at 2 mm -> 39 at 1 mm; nothing resized to a patch
    assert np.allclose(np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0), 1.0)


@pytest.mark.parametrize("center", [(4, 10, 50), (10, 20, 30), (1, 2, 3), (19, 39, 59)])
def test_roi_mask_crops_a_patch_around_the_mask_with_real_context(center):
    config = load_config(None, ["data.dims=3", "data.mode=patch", "data.patch_size=[16,32,32]", "data.roi=mask",
                                "data.intensity=none"])
    array = np.arange(20 * 40 * 60, dtype=np.float32).reshape(20, 40, 60)
    mask = np.zeros(array.shape, np.uint8)
    z, y, x = center
    mask[z, y, x] = 1
    image = np.asarray(network_input(_volume(array), config, "case", _volume(mask)).sample["image"])[0]
    assert image.shape == (16, 32, 32)
    value = array[z, y, x]
    hits = np.argwhere(np.isclose(image * GRAY_STD + GRAY_MEAN, value, rtol=0, atol=0.5))
    assert len(hits)  # the mask voxel is inside the crop
    assert image.min() * GRAY_STD + GRAY_MEAN >= 0 and len(np.unique(image)) == image.size  # real voxels, no padding
    if center == (10, 20, 30):  # away from the borders: the voxel sits at the crop's centre
        assert tuple(hits[0]) == (8, 16, 16)


def test_roi_mask_needs_a_mask_with_foreground_and_says_so():
    from medtl.errors import InputError

    config = load_config(None, ["data.dims=3", "data.mode=patch", "data.patch_size=16", "data.roi=mask"])
    volume = _volume(np.random.default_rng(0).normal(size=(20, 40, 40)).astype(np.float32))
    with pytest.raises(InputError) as missing:
        network_input(volume, config, "case7")
    assert missing.value.reason == "ROI_MASK_MISSING" and "case7" in str(missing.value)
    with pytest.raises(InputError) as empty:
        network_input(volume, config, "case7", _volume(np.zeros((20, 40, 40), np.uint8)))
    assert empty.value.reason == "ROI_MASK_EMPTY"


def test_roi_center_crops_the_middle_to_the_patch_size():
    config = load_config(None, ["data.mode=patch", "data.patch_size=[8,8]", "data.roi=center",
                                "data.intensity=none"])
    array = np.arange(1 * 20 * 30, dtype=np.float32).reshape(1, 20, 30)
    image = np.asarray(network_input(_volume(array), config, "case").sample["image"])[0]
    assert image.shape == (8, 8)
    assert np.allclose(image * GRAY_STD + GRAY_MEAN, array[0, 6:14, 11:19], atol=1e-3)
