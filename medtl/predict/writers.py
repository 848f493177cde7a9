"""Per-series output files (NIfTI masks and probability maps), each written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.nifti import write_nifti
from ..plumbing.atomic import atomic_path


@dataclass
class OutputGeometry:
    """The original grid as a 3D volume: 2D images become one-slice volumes."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray

    @classmethod
    def of(cls, volume) -> "OutputGeometry":
        if volume.array.ndim == 3:
            return cls(tuple(volume.array.shape), tuple(volume.spacing), tuple(volume.origin),
                       np.asarray(volume.direction, dtype=float))
        # 2D: array axes are (row, column); the normal becomes the (unit-thick) slice axis
        direction = np.asarray(volume.direction, dtype=float)[:, [2, 0, 1]]
        return cls((1, *volume.array.shape), (1.0, *volume.spacing), tuple(volume.origin), direction)

    def voxel_volume(self, dims: int) -> float:
        """mm^3 per voxel (3D) or mm^2 per pixel (2D)."""
        return float(np.prod(self.spacing[-dims:]))


def write_nifti_atomic(path: Path, array: np.ndarray, geometry: OutputGeometry) -> Path:
    """Write ``array`` (reshaped to the 3D grid) as NIfTI via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        write_nifti(tmp, np.asarray(array).reshape(geometry.shape), geometry.spacing, geometry.origin,
                    geometry.direction)
    return path
