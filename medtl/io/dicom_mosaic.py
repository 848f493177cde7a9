"""Siemens mosaics: many slices tiled in one frame, unpacked into a 3D stack of frames.

A mosaic (``ImageType`` contains ``MOSAIC``) stores ``n`` slices as tiles of a
``grid x grid`` image (``grid = ceil(sqrt(n))``). The slice count comes from the
private tag (0019,100A) or the CSA header, read with nibabel's Siemens DICOM wrapper
(``nibabel.nicom``), as are the slice normal and the position of the first slice (the
header's ImagePositionPatient is the corner of the whole tiled image, not of a slice,
so using it as is puts the volume hundreds of millimetres off). When the count cannot
be determined the file is refused as ``MOSAIC_UNREADABLE``: a tiled image is never
returned as a 2D image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


class MosaicUnreadable(ValueError):
    """The file is a mosaic whose slice layout cannot be determined."""


@dataclass(frozen=True)
class MosaicLayout:
    """How the slices are tiled, and where they are."""

    slices: int
    grid: int
    tile_rows: int
    tile_columns: int
    first_position: tuple[float, float, float]
    normal: tuple[float, float, float]
    spacing: float  # distance between slice centres along the normal (mm)
    b_value: float | None = None
    gradient: tuple[float, float, float] | None = None


def is_mosaic(ds: Any) -> bool:
    """Whether the header says the frame holds tiled slices."""
    image_type = ds.get("ImageType") or []
    return "MOSAIC" in [str(v).upper() for v in (image_type if not isinstance(image_type, str) else [image_type])]


def mosaic_layout(ds: Any) -> MosaicLayout:
    """The layout of a mosaic header (no pixels needed); raises ``MosaicUnreadable``."""
    from nibabel.nicom import dicomwrappers

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel flags its readers as experimental on every use
            wrapper = dicomwrappers.wrapper_from_data(ds)
            slices = int(wrapper.n_mosaic)
            normal = np.asarray(wrapper.slice_normal, dtype=float)
            first = np.asarray(wrapper.image_position, dtype=float)
            spacing = float(wrapper.voxel_sizes[2])
            b_value, gradient = _diffusion(wrapper)
    except Exception as exc:  # noqa: BLE001 - nibabel raises KeyError/WrapperError/... for broken CSA data
        raise MosaicUnreadable(f"slice count or geometry not found ({type(exc).__name__}: {exc})") from None
    grid = math.ceil(math.sqrt(slices)) if slices > 0 else 0
    rows, columns = int(ds.Rows), int(ds.Columns)
    if slices < 1 or grid < 1 or rows % grid or columns % grid:
        raise MosaicUnreadable(f"{slices} slices do not tile a {rows}x{columns} frame")
    if normal.shape != (3,) or not np.isfinite(normal).all() or not np.isfinite(first).all() or spacing <= 0:
        raise MosaicUnreadable("slice normal, position or spacing missing")
    return MosaicLayout(slices, grid, rows // grid, columns // grid, tuple(first), tuple(normal / np.linalg.norm(normal)),
                        spacing, b_value, gradient)


def _diffusion(wrapper) -> tuple[float | None, tuple[float, float, float] | None]:
    try:
        b_value = wrapper.b_value
        vector = wrapper.b_vector
    except Exception:  # noqa: BLE001 - not a diffusion series
        return None, None
    gradient = tuple(float(v) for v in vector) if vector is not None else None
    return (float(b_value) if b_value is not None else None), gradient


def slice_positions(layout: MosaicLayout) -> list[tuple[float, float, float]]:
    """Centre of voxel (0, 0) of each slice, in tile order."""
    first, normal = np.asarray(layout.first_position), np.asarray(layout.normal)
    return [tuple(float(v) for v in first + k * layout.spacing * normal) for k in range(layout.slices)]


def unpack(stored: np.ndarray, layout: MosaicLayout) -> np.ndarray:
    """``(1, rows, columns)`` tiled frame -> ``(slices, tile_rows, tile_columns)``, row-major tile order."""
    plane = stored.reshape(layout.grid, layout.tile_rows, layout.grid, layout.tile_columns)
    tiles = plane.transpose(0, 2, 1, 3).reshape(layout.grid * layout.grid, layout.tile_rows, layout.tile_columns)
    return tiles[:layout.slices]
