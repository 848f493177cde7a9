"""Synthetic chest-radiograph-like images with a subtle finding (never real patients).

Each image: body outline, two lung fields, rib arcs, spine, exposure differences
and noise; optionally a nodule (variable size, contrast and position inside a lung)
with its mask. Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class Radiograph:
    density: np.ndarray  # float, ~0..1, bright = dense (MONOCHROME2 sense)
    mask: np.ndarray  # uint8 nodule mask
    finding: bool
    side: int  # 0 = right lung (image left), 1 = left lung; -1 without finding


def _anatomy(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    y, x = np.mgrid[0:size, 0:size] / size
    cx = 0.5 + rng.normal(0, 0.02)
    body = ((x - cx) / (0.42 + rng.normal(0, 0.02))) ** 2 + ((y - 0.55) / 0.55) ** 2 < 1
    density = np.where(body, 0.55, 0.02)
    lungs = []
    for side, offset in ((0, -0.17), (1, 0.17)):
        lx, ly = cx + offset + rng.normal(0, 0.01), 0.45 + rng.normal(0, 0.02)
        lung = ((x - lx) / (0.12 + rng.normal(0, 0.01))) ** 2 + ((y - ly) / (0.27 + rng.normal(0, 0.015))) ** 2 < 1
        density = np.where(lung, 0.18, density)
        lungs.append(lung)
    for k in range(7):  # ribs: curved bands across the lungs
        ry = 0.22 + 0.075 * k + rng.normal(0, 0.005)
        curve = ry + 0.08 * ((x - cx) / 0.4) ** 2
        rib = (np.abs(y - curve) < 0.012) & body
        density = density + 0.12 * rib
    spine = (np.abs(x - cx) < 0.035) & body
    density = density + 0.3 * spine
    return ndimage.gaussian_filter(density, size / 160), lungs


def make_radiograph(size: int, rng: np.random.Generator, finding: bool, contrast: tuple[float, float] = (0.05, 0.14),
                    radius: tuple[float, float] = (0.03, 0.07), side: int | None = None) -> Radiograph:
    """One image; ``finding`` adds a nodule in a lung (``side`` picks which, else random)."""
    density, lungs = _anatomy(size, rng)
    mask = np.zeros((size, size), np.uint8)
    chosen = -1
    if finding:
        chosen = int(rng.integers(0, 2)) if side is None else side
        candidates = np.argwhere(ndimage.binary_erosion(lungs[chosen], iterations=max(1, size // 16)))
        cy, cx = candidates[rng.integers(len(candidates))]
        r = rng.uniform(*radius) * size
        y, x = np.mgrid[0:size, 0:size]
        blob = np.exp(-(((y - cy) ** 2 + (x - cx) ** 2) / (2 * (r / 1.5) ** 2)))
        density = density + rng.uniform(*contrast) * blob
        mask = (blob > 0.5).astype(np.uint8)
    exposure = rng.uniform(0.85, 1.15)
    density = density * exposure + rng.normal(0, 0.02, density.shape)
    return Radiograph(density, mask, finding, chosen)


def to_stored(density: np.ndarray, monochrome1: bool, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """12-bit stored values whose physical value (after rescale/inversion) is proportional to density."""
    physical = np.clip(density, 0, 1.2) / 1.2 * 4000
    stored = (physical - intercept) / slope
    if monochrome1:
        # medtl inverts MONOCHROME1 as (lo + hi) - value over the rescaled 12-bit range
        lo, hi = intercept, 4095 * slope + intercept
        stored = ((lo + hi) - physical - intercept) / slope
    return np.clip(np.rint(stored), 0, 4095).astype(np.uint16)
