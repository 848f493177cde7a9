from pathlib import Path

import numpy as np
import pytest
import torch

from medtl.data.dataset import PreparedCase, foreground_sample
from medtl.data.patches import PatchDataset, sample_patch


def case(tmp_path: Path | None, shape=(20, 40, 36), lesion=True, name="c0") -> PreparedCase:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, *shape)).astype(np.float32)
    mask = np.zeros((1, *shape), np.int16)
    if lesion:
        mask[0, 3:6, 30:34, 2:5] = 1  # small, near a corner: a uniform patch seldom holds it
    item = PreparedCase(name, "p", "p", None, image, mask, "x")
    item.foreground = foreground_sample(mask, 0)
    if tmp_path is not None:  # stored as in patch mode: memory-mapped on use
        np.save(tmp_path / f"{name}_image.npy", image)
        np.save(tmp_path / f"{name}_mask.npy", mask)
        item.image_data, item.mask_data = tmp_path / f"{name}_image.npy", tmp_path / f"{name}_mask.npy"
    return item


def starts(item, seed, ratio=0.5, n=20, size=(16, 16, 16)):
    return [sample_patch(item, size, ratio, np.random.default_rng([seed, i]))[2] for i in range(n)]


def test_patches_are_reproducible_for_a_seed_and_differ_between_seeds(tmp_path):
    item = case(tmp_path)
    assert starts(item, 7) == starts(item, 7)
    assert starts(item, 7) != starts(item, 8)
    dataset = PatchDataset([item, item], (16, 16, 16), 3, 0.5, seed=11)
    again = PatchDataset([item, item], (16, 16, 16), 3, 0.5, seed=11)
    order = [5, 0, 3, 1, 4, 2]  # a worker or a resumed epoch may ask in any order
    first = {i: dataset[i] for i in range(6)}
    for i in order:
        image, target, index = again[i]
        assert torch.equal(image, first[i][0]) and torch.equal(target, first[i][1]) and index == i // 3


def test_foreground_ratio_one_puts_the_lesion_in_every_patch(tmp_path):
    item = case(tmp_path)
    for i in range(40):
        _, mask, _ = sample_patch(item, (16, 16, 16), 1.0, np.random.default_rng([3, i]))
        assert mask.any()
    uniform = [sample_patch(item, (16, 16, 16), 0.0, np.random.default_rng([3, i]))[1].any() for i in range(40)]
    assert not all(uniform)  # uniform placement: the small corner lesion is often missed


def test_a_case_without_foreground_still_gives_patches(tmp_path):
    item = case(tmp_path, lesion=False)
    image, mask, _ = sample_patch(item, (16, 16, 16), 1.0, np.random.default_rng(0))
    assert image.shape == (1, 16, 16, 16) and not mask.any()


def test_a_case_smaller_than_the_patch_is_padded_at_the_far_end(tmp_path):
    item = case(tmp_path, shape=(6, 40, 10))
    image, mask, start = sample_patch(item, (16, 16, 16), 0.0, np.random.default_rng(0))
    assert image.shape == mask.shape == (1, 16, 16, 16)
    assert start[0] == 0 and start[2] == 0
    original = np.load(item.image_data)
    r = start[1]
    assert np.array_equal(image[0, :6, :, :10], original[0, :, r:r + 16, :])
    assert np.array_equal(image[0, 6:, :, :10], np.broadcast_to(original[0, 5:6, r:r + 16, :], (10, 16, 10)))
    assert not mask[0, 6:].any() and not mask[0, :, :, 10:].any()


def test_patches_are_cut_from_the_stored_file_not_a_copy_in_memory(tmp_path):
    item = case(tmp_path)
    assert isinstance(item.image, np.memmap) and isinstance(item.mask, np.memmap)
    image, mask, (z, y, x) = sample_patch(item, (16, 16, 16), 0.5, np.random.default_rng(1))
    assert np.array_equal(image, np.load(item.image_data)[:, z:z + 16, y:y + 16, x:x + 16])
    assert image.flags.writeable and not isinstance(image, np.memmap)


@pytest.mark.parametrize("count", [1, 5000])
def test_the_foreground_sample_lies_in_the_mask_and_is_capped(count):
    mask = np.zeros((1, 30, 30, 30), np.int16)
    mask.reshape(-1)[np.random.default_rng(0).choice(mask.size, count, replace=False)] = 1
    sample = foreground_sample(mask, 0)
    assert len(sample) == min(count, 4096)
    assert mask[0][tuple(sample.T)].all()
    assert np.array_equal(sample, foreground_sample(mask, 0))
