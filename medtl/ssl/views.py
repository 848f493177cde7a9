"""Random views of a grayscale medical image for contrastive and BYOL training (MONAI array transforms).

Chosen for grayscale radiology: random resized crop, flip, small rotation, gamma
contrast, blur and noise; no colour jitter or grayscale conversion (there is one
channel). The pipeline is seeded per epoch by the loop, so a resumed run draws the
same views as an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import SSLConfig


def view_pipeline(shape: tuple[int, ...], ssl: SSLConfig):
    """A MONAI ``Compose`` mapping a ``(1, *shape)`` tensor to a random view of the same shape."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandFlip,
        RandGaussianNoise,
        RandGaussianSmooth,
        RandScaleCrop,
        Resize,
    )

    dims = len(shape)
    angle = math.radians(10)
    rotate = (angle,) if dims == 2 else (angle, 0.0, 0.0)  # 3D: in-plane, about the slice axis
    return Compose([
        RandScaleCrop(roi_scale=ssl.crop_scale, max_roi_scale=1.0, random_size=True),
        Resize(spatial_size=shape, mode="bilinear" if dims == 2 else "trilinear"),
        RandFlip(prob=0.5, spatial_axis=dims - 1),
        RandAffine(prob=0.5, rotate_range=rotate, scale_range=(0.1,) * dims, padding_mode="border"),
        RandAdjustContrast(prob=0.5, gamma=(0.7, 1.5)),
        RandGaussianSmooth(prob=0.3, sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0), sigma_z=(0.3, 1.0)),
        RandGaussianNoise(prob=0.3, std=0.1),
    ])


def plain_tensor(value) -> torch.Tensor:
    """A float tensor without MONAI's metadata (a MetaTensor would carry its transform trace into every batch)."""
    value = value.as_tensor() if hasattr(value, "as_tensor") else torch.as_tensor(value)
    return value.float()


class ViewPairs(torch.utils.data.Dataset):
    """``(view_a, view_b, unit)``: two random views per unit.

    A unit is a list of case indices: one case (two views of the same image, SimCLR), or
    all images of one patient (``ssl.patient_pairs``, MICLe: the views come from two
    different images of that patient when it has more than one). Units are patients in
    MICLe mode, so one batch never holds two images of a patient as negatives.
    """

    def __init__(self, images: list, units: list[list[int]], pipeline, seed: int):
        self.images, self.units, self.pipeline, self.seed = images, units, pipeline, seed

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, index: int):
        members = self.units[index]
        first, second = members[0], members[0]
        if len(members) > 1:
            rng = np.random.default_rng([self.seed, index])
            first, second = (members[i] for i in rng.choice(len(members), 2, replace=False))
        return self._view(first), self._view(second), index

    def _view(self, case: int) -> torch.Tensor:
        image = torch.from_numpy(np.array(self.images[case].image, dtype=np.float32))
        return plain_tensor(self.pipeline(image))


def view_units(patient_keys: list[str], patient_pairs: bool) -> list[list[int]]:
    """Case indices grouped into units: one per case, or one per patient (cases without a key stand alone)."""
    if not patient_pairs:
        return [[i] for i in range(len(patient_keys))]
    by_patient: dict[str, list[int]] = {}
    units = []
    for i, key in enumerate(patient_keys):
        if key:
            by_patient.setdefault(key, []).append(i)
        else:
            units.append([i])
    return sorted(by_patient.values()) + units
