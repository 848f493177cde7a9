"""The ``Volume``: medtl's one internal image type.

Orientation convention (converted once, at load):

* ``array`` is indexed in storage order ``(slice, row, column)`` for 3D and
  ``(row, column)`` for 2D, the same order as ``SimpleITK.GetArrayFromImage``.
* World coordinates are DICOM patient coordinates, LPS, in millimetres.
* ``spacing[a]`` is the step in mm along array axis ``a``; ``direction[:, a]`` is
  the unit LPS vector along array axis ``a``; ``origin`` is the LPS position of the
  centre of voxel ``(0, 0, 0)``. So ``world = origin + direction @ (spacing * index)``.
* For 2D images ``direction`` is still 3x3: columns are the row-step direction,
  the column-step direction and the image normal.

NIfTI (RAS, ``(i, j, k)``) and SimpleITK (spacing ``(x, y, z)``) inputs are
converted into this convention by their readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .reasons import Finding


@dataclass
class Volume:
    """An image array with its geometry and PHI-free metadata."""

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, float, float]
    direction: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping 3D array indices to LPS millimetres."""
        if self.ndim != 3:
            raise ValueError("affine is defined for 3D volumes only")
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        affine[:3, 3] = self.origin
        return affine

    def pixel_hash(self) -> str:
        """SHA-256 of the pixel values and shape alone: the same image under another file name, header or UIDs."""
        import hashlib

        array = np.ascontiguousarray(self.array, dtype=np.float32)
        return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()

    @property
    def reason_codes(self) -> list[str]:
        return [f.reason.name for f in self.findings]

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        codes = ",".join(self.reason_codes) or "-"
        return f"Volume(shape={self.array.shape}, spacing=({spacing}), findings={codes})"
