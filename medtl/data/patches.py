"""Training patches of ``data.patch_size`` drawn from cases kept at their native extent (``data.mode: patch``).

Each epoch draws ``data.patches_per_case`` patches from every training case. A patch
is centred on a mask voxel with probability ``data.foreground_ratio`` (when the case
has foreground; the voxel is drawn from a stored sample of the mask, so the mask is
never read whole), otherwise placed uniformly at random: nnU-Net's and MONAI's
``RandCropByPosNegLabeld`` scheme without holding index lists of every voxel. The
random generator of patch ``i`` is seeded by ``(epoch seed, i)``, so patches do not
depend on loader workers or order, and a resumed run draws the patches the
uninterrupted run would have. A case smaller than the patch is padded at its far end
(edge values for the image, background for the mask).
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import PreparedCase, training_item


def patch_start(case: PreparedCase, size: tuple[int, ...], foreground_ratio: float,
                rng: np.random.Generator) -> tuple[int, ...]:
    """The corner of one patch of ``size`` in ``case``."""
    shape = case.spatial_shape
    room = [max(0, s - p) for s, p in zip(shape, size)]
    foreground = case.foreground
    if foreground is not None and len(foreground) and rng.random() < foreground_ratio:
        center = foreground[rng.integers(len(foreground))]
        return tuple(int(min(max(0, c - p // 2), r)) for c, p, r in zip(center, size, room))
    return tuple(int(rng.integers(0, r + 1)) for r in room)


def crop_patch(array: np.ndarray, start: tuple[int, ...], size: tuple[int, ...], pad_mode: str) -> np.ndarray:
    """``array[:, start:start+size]`` as a new array, padded at the far end where the array is smaller."""
    window = (slice(None), *[slice(s, s + p) for s, p in zip(start, size)])
    patch = np.array(array[window])
    missing = [p - n for p, n in zip(size, patch.shape[1:])]
    if any(missing):
        patch = np.pad(patch, [(0, 0)] + [(0, m) for m in missing], mode=pad_mode)
    return patch


def sample_patch(case: PreparedCase, size: tuple[int, ...], foreground_ratio: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """``(image patch, mask patch or None, start)``."""
    start = patch_start(case, size, foreground_ratio, rng)
    image = crop_patch(case.image, start, size, "edge")
    mask = case.mask
    return image, None if mask is None else crop_patch(mask, start, size, "constant"), start


class PatchDataset(torch.utils.data.Dataset):
    """``patches_per_case`` patches of every case: item ``i`` is patch ``i % patches_per_case`` of case
    ``i // patches_per_case``, as ``(image, target, case index)``."""

    def __init__(self, cases: list[PreparedCase], size: tuple[int, ...], patches_per_case: int,
                 foreground_ratio: float, seed: int, augment=None):
        self.cases, self.size, self.per_case = cases, tuple(size), patches_per_case
        self.foreground_ratio, self.seed, self.augment = foreground_ratio, seed, augment

    def __len__(self) -> int:
        return len(self.cases) * self.per_case

    def __getitem__(self, index: int):
        case_index = index // self.per_case
        case = self.cases[case_index]
        rng = np.random.default_rng([self.seed, index])
        image, mask, _ = sample_patch(case, self.size, self.foreground_ratio, rng)
        return training_item(image, mask, case, case_index, self.augment)
