"""PNG, JPEG, TIFF and BMP images (public datasets) as 2D ``Volume``s, read with SimpleITK.

8- and 16-bit grayscale images load as they are. Colour images follow ``rgb``:

- a colour file whose channels are all equal (grayscale saved as RGB, common in public
  chest X-ray sets) loads as that one channel, always;
- ``"refuse"`` (default): any other colour image is ``NON_SCALAR_IMAGE``;
- ``"luminance"``: converted with the ITU-R BT.601 weights ``0.299 R + 0.587 G + 0.114 B``
  (recorded as ``RGB_TO_LUMINANCE``).

An alpha channel is dropped when fully opaque and refused otherwise. These files carry
no patient geometry: the pixel spacing is what the file states (TIFF/PNG resolution
tags), else 1 mm with ``NO_PIXEL_SPACING`` recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .guards import check_finite
from .reasons import Finding, Reason
from .sitk_formats import read_with_size_guard
from .volume import Volume

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
RGB_RULES = ("refuse", "luminance")
_LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a PNG/JPEG/TIFF/BMP suffix."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def _to_gray(array: np.ndarray, rgb: str, path: Path, findings: list[Finding]) -> np.ndarray:
    channels = array.shape[-1]
    if channels in (2, 4):  # gray+alpha, RGBA
        alpha = array[..., -1]
        if not (alpha == alpha.max()).all():
            raise InputError(f"{path} has a transparent alpha channel; save it without transparency",
                             Reason.NON_SCALAR_IMAGE.name)
        array = array[..., :-1]
        channels -= 1
    if channels == 1:
        return array[..., 0]
    if channels != 3:
        raise InputError(f"{path} has {channels} channels; medtl reads grayscale or RGB images",
                         Reason.NON_SCALAR_IMAGE.name)
    if (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all():
        return array[..., 0]
    if rgb == "luminance":
        findings.append(Finding(Reason.RGB_TO_LUMINANCE))
        return array.astype(np.float32) @ _LUMINANCE
    raise InputError(f"{path} is a colour image; set data.rgb: luminance to convert it (0.299 R + 0.587 G + "
                     "0.114 B), or convert the images to grayscale yourself", Reason.NON_SCALAR_IMAGE.name)


def load_image_file(path: str | os.PathLike, rgb: str = "refuse", as_label: bool = False) -> Volume:
    """Read a 2D image file into a ``Volume`` (array ``(rows, columns)``, float32, or integers for labels)."""
    import SimpleITK as sitk

    path = Path(path)
    if rgb not in RGB_RULES:
        raise InputError(f"unknown colour rule {rgb!r}; use one of {RGB_RULES}")
    image = read_with_size_guard(path)
    if image.GetDimension() != 2:
        raise InputError(f"{path} is a {image.GetDimension()}D image file; medtl reads 2D PNG/JPEG/TIFF images "
                         "(use NIfTI or DICOM for volumes)", Reason.UNSUPPORTED_DIMENSIONS.name)
    findings: list[Finding] = []
    array = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = _to_gray(array, rgb, path, findings)
    if as_label:
        if not np.issubdtype(array.dtype, np.integer):
            raise InputError(f"label {path} is not an integer image", Reason.LABEL_NOT_INTEGER.name)
        array = array.astype(np.int16 if array.max(initial=0) < 32768 else np.int32)
    else:
        array = array.astype(np.float32)
        check_finite(array, str(path))
    spacing = tuple(float(s) for s in image.GetSpacing()[::-1])
    if np.allclose(spacing, 1.0, atol=1e-6):
        spacing = (1.0, 1.0)
        findings.append(Finding(Reason.NO_PIXEL_SPACING))
    metadata = {"source": path.suffix.lstrip(".").lower(), "kind": "2d", "shape": list(array.shape),
                "value_mapping": [], "modality": "", "reasons": ";".join(str(f) for f in findings)}
    return Volume(np.ascontiguousarray(array), spacing, (0.0, 0.0, 0.0), np.eye(3), metadata, findings)
