"""Models-Genesis-style corruption for restoration pretraining (Zhou et al. 2019), from MONAI transforms.

A corrupted image is the original passed through, each with its own probability: a
monotone non-linear intensity curve (``RandHistogramShift``), local pixel shuffling
inside small boxes (``RandCoarseShuffle``), and in-painting (boxes replaced by noise)
or out-painting (everything but a few boxes replaced by noise) with
``RandCoarseDropout``. The network restores the original. Every step is recorded
(``Corruption``): which voxels were shuffled and which painted, so the bookkeeping is
testable (voxels outside the painted region are the shuffled image exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import SSLConfig
from .views import plain_tensor


@dataclass
class Corruption:
    """A corrupted image and where each step acted (boolean masks of the image's spatial shape)."""

    image: torch.Tensor  # (1, *spatial)
    curved: bool  # the non-linear intensity curve was applied
    shuffled: np.ndarray  # voxels inside shuffled boxes
    painted: np.ndarray  # voxels replaced by noise (in the boxes, or outside them when out-painting)
    outpainted: bool


def _box_mask(shape: tuple[int, ...], holes: list) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for hole in holes:
        mask[hole[1:]] = True  # hole[0] is the channel slice
    return mask


class Corruptor:
    """Seeded Models-Genesis corruption of ``(1, *spatial)`` images of one shape.

    Box sizes follow the image: shuffling boxes are 1/32-1/8 of each side (up to 10000
    boxes in 2D, as many as cover a comparable share in 3D), painting boxes 1/8-1/3
    (in-painting) or 3/8-3/4 (out-painting, the kept window).
    """

    def __init__(self, shape: tuple[int, ...], ssl: SSLConfig):
        from monai.transforms import RandCoarseDropout, RandCoarseShuffle, RandHistogramShift

        sizes = np.asarray(shape)

        def side(share: float) -> list[int]:
            return [max(1, int(round(s * share))) for s in sizes]

        self.shape = tuple(shape)
        self.ssl = ssl
        self.curve = RandHistogramShift(num_control_points=(5, 10), prob=1.0)
        self.shuffle = RandCoarseShuffle(holes=8, max_holes=32, spatial_size=side(1 / 32), max_spatial_size=side(1 / 8),
                                         prob=1.0)
        self.inpaint = RandCoarseDropout(holes=1, max_holes=5, spatial_size=side(1 / 8), max_spatial_size=side(1 / 3),
                                         dropout_holes=True, fill_value=(0.0, 1.0), prob=1.0)
        self.outpaint = RandCoarseDropout(holes=1, max_holes=4, spatial_size=side(3 / 8),
                                          max_spatial_size=side(3 / 4), dropout_holes=False, fill_value=(0.0, 1.0),
                                          prob=1.0)
        self.rng = np.random.RandomState(0)

    def set_random_state(self, seed: int) -> None:
        """Seed every step (the loop does this per epoch: resumed runs draw the same corruptions)."""
        self.rng = np.random.RandomState(seed % (2**32))
        for i, step in enumerate((self.curve, self.shuffle, self.inpaint, self.outpaint)):
            step.set_random_state(seed=(seed + 1 + i) % (2**32))

    def __call__(self, image: torch.Tensor) -> Corruption:
        """Corrupt one normalised image; the noise and the curve act on its own value range."""
        low, high = float(image.min()), float(image.max())
        span = max(high - low, 1e-6)
        x = (image - low) / span  # the Models Genesis steps are defined on [0, 1]
        curved = bool(self.rng.rand() < self.ssl.nonlinear_prob)
        if curved:
            x = plain_tensor(self.curve(x))
        shuffled = np.zeros(self.shape, dtype=bool)
        if self.rng.rand() < self.ssl.shuffle_prob:
            self.shuffle.randomize(x.shape[1:])
            x = plain_tensor(self.shuffle(x, randomize=False))
            shuffled = _box_mask(self.shape, self.shuffle.hole_coords)
        painted, outpainted = np.zeros(self.shape, dtype=bool), False
        if self.rng.rand() < self.ssl.paint_prob:
            outpainted = bool(self.rng.rand() >= self.ssl.inpaint_share)
            step = self.outpaint if outpainted else self.inpaint
            step.randomize(x.shape[1:])
            x = plain_tensor(step(x, randomize=False))
            boxes = _box_mask(self.shape, step.hole_coords)
            painted = ~boxes if outpainted else boxes
        return Corruption(x * span + low, curved, shuffled, painted, outpainted)


class RestorePairs(torch.utils.data.Dataset):
    """``(corrupted, original, index)`` of each image."""

    def __init__(self, images: list, corruptor: Corruptor):
        self.images, self.corruptor = images, corruptor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        original = torch.from_numpy(np.array(self.images[index].image, dtype=np.float32))
        return self.corruptor(original).image.float(), original, index
