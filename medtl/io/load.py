"""``load_volume``: one entry point for every supported input."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .image_files import is_image_path, load_image_file
from .nifti import is_nifti_path, load_nifti
from .reasons import Reason
from .sitk_formats import is_sitk_path, load_sitk
from .volume import Volume


def is_volume_file(path: Path) -> bool:
    """A NIfTI/NRRD/MHA or PNG/JPEG/TIFF file (anything else is read as DICOM: a file or a series folder)."""
    return path.is_file() and (is_nifti_path(path) or is_sitk_path(path) or is_image_path(path))


def load_volume(path: str | os.PathLike, *, as_label: bool = False, series_key: str | None = None,
                rgb: str = "refuse") -> Volume:
    """Load a NIfTI/NRRD/MHA file, a PNG/JPEG/TIFF/BMP image, a DICOM file, or a folder holding one DICOM series.

    ``rgb`` is the colour rule for image files (``medtl.io.image_files``).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input does not exist: {path}; check the path (relative paths in a manifest "
                         "resolve against the manifest's folder)", Reason.FILE_NOT_FOUND.name)
    if is_volume_file(path):
        if is_image_path(path):
            return load_image_file(path, rgb=rgb, as_label=as_label)
        return load_nifti(path, as_label=as_label) if is_nifti_path(path) else load_sitk(path)
    from .dicom import load_dicom

    return load_dicom(path, series_key=series_key)


def load_volumes(path: str | os.PathLike, *, rgb: str = "refuse") -> dict[str, Volume]:
    """Every volume at ``path``: a folder holding a 4D DICOM series (DTI, fMRI) gives one per volume.

    Keys are the series keys ``medtl scan`` lists (``load_volume(path, series_key=...)``
    loads one of them); a single-volume input gives one entry.
    """
    path = Path(path)
    if is_volume_file(path):
        return {path.name: load_volume(path, rgb=rgb)}
    from .dicom import load_dicom_volumes

    return load_dicom_volumes(path)
