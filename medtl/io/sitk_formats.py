"""Other research formats (NRRD, MetaImage) through SimpleITK."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .guards import check_finite, check_size
from .reasons import Reason
from .volume import Volume

SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def is_sitk_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a NRRD/MetaImage suffix."""
    return str(path).lower().endswith(SITK_SUFFIXES)


def read_with_size_guard(path: str | os.PathLike):
    """A ``SimpleITK.Image`` read header first, so empty or too-large images are refused before any decode."""
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        if 0 in size:
            raise InputError(f"{path} has size {size}: no voxels", Reason.EMPTY_IMAGE.name)
        check_size(tuple(size) + (reader.GetNumberOfComponents(),), str(path))
        return reader.Execute()
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"SimpleITK cannot read {path}: {message}", Reason.IMAGE_UNREADABLE.name) from exc


def load_sitk(path: str | os.PathLike) -> Volume:
    """Read a scalar 2D/3D image with SimpleITK and convert to medtl's convention."""
    import SimpleITK as sitk

    image = read_with_size_guard(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path} has {image.GetNumberOfComponentsPerPixel()} components per pixel; "
                         "medtl needs scalar images", Reason.NON_SCALAR_IMAGE.name)
    if image.GetDimension() not in (2, 3):
        raise InputError(f"{path} is {image.GetDimension()}D; split it into 3D volumes",
                         Reason.UNSUPPORTED_DIMENSIONS.name)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    check_finite(array, str(path))
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection()).reshape(dim, dim)[:, ::-1]
    spacing = tuple(float(s) for s in image.GetSpacing()[::-1])
    if not (np.isfinite(direction).all() and np.isfinite(spacing).all() and min(spacing) > 0):
        raise InputError(f"{path} has spacing {spacing} / a non-finite direction: no usable geometry",
                         Reason.NO_GEOMETRY.name)
    origin = tuple(float(o) for o in image.GetOrigin()) + (0.0,) * (3 - dim)
    if dim == 2:
        full = np.eye(3)
        full[:2, :2] = direction
        direction = full
    metadata = {"source": Path(path).suffix.lstrip(".").lower(), "kind": f"{dim}d",
                "shape": list(array.shape), "value_mapping": [], "modality": "", "reasons": ""}
    return Volume(array, spacing, origin, direction, metadata, [])
