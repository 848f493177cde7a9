"""Synthetic CT-like volumes with HU-like tissues and an optional lesion (never real patients)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def make_ct_volume(shape: tuple[int, int, int], rng: np.random.Generator, lesion: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(hu, mask)``: HU float array (slice, row, col) and a uint8 lesion mask."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    hu = np.full(shape, -1000.0)
    body = (y / (0.8 + rng.normal(0, 0.03))) ** 2 + (x / (0.9 + rng.normal(0, 0.03))) ** 2 < 1
    hu[body] = -100.0  # fat
    organ = ((y - 0.1) / 0.45) ** 2 + ((x + 0.2) / 0.4) ** 2 + (z / 1.3) ** 2 < 1
    hu[organ & body] = 55.0  # liver-like
    spine = ((y - 0.6) / 0.12) ** 2 + (x / 0.12) ** 2 < 1
    hu[spine & body] = 500.0  # bone
    mask = np.zeros(shape, np.uint8)
    if lesion:
        centers = np.argwhere(ndimage.binary_erosion(organ & body, iterations=3))
        cz, cy, cx = centers[rng.integers(len(centers))]
        radius = rng.uniform(0.12, 0.22)
        zz, yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
        scaled = (((zz - cz) / shape[0]) ** 2 + ((yy - cy) / shape[1]) ** 2 + ((xx - cx) / shape[2]) ** 2)
        mask = (scaled < (radius / 2) ** 2).astype(np.uint8)
        hu[mask.astype(bool)] += rng.uniform(-35, -20)  # hypodense lesion
    hu = ndimage.gaussian_filter(hu, 0.7) + rng.normal(0, 12, shape)
    return hu, mask
