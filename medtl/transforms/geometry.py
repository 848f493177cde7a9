"""Image/mask geometry agreement (``GEOMETRY_MISMATCH``) and nearest-neighbour mask resampling."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..io.reasons import Reason
from ..io.volume import Volume


def squeeze_2d(volume: Volume, what: str, case_id: str) -> np.ndarray:
    """The 2D array of a 2D image (a 3D volume with one slice counts)."""
    array = volume.array
    if array.ndim == 3 and array.shape[0] == 1:
        return array[0]
    if array.ndim == 2:
        return array
    raise InputError(f"case {case_id}: {what} has shape {array.shape}, not a 2D image; use data.dims=3 "
                     "for volumes", Reason.UNSUPPORTED_DIMENSIONS.name)


def geometry_problem(image: Volume, mask: Volume, dims: int) -> str | None:
    """``None`` when the mask lies on the image grid, else what differs."""
    image_array = image.array if dims == 3 else image.array.reshape(image.array.shape[-2:])
    mask_array = mask.array if dims == 3 else mask.array.reshape(mask.array.shape[-2:])
    if image_array.shape != mask_array.shape:
        return f"shape {mask_array.shape} vs image {image_array.shape}"
    image_spacing, mask_spacing = np.asarray(image.spacing)[-dims:], np.asarray(mask.spacing)[-dims:]
    if not np.allclose(image_spacing, mask_spacing, rtol=1e-3, atol=1e-4):
        return f"spacing {tuple(np.round(mask_spacing, 4))} vs image {tuple(np.round(image_spacing, 4))}"
    if dims == 3:
        if not np.allclose(image.origin, mask.origin, atol=0.01):
            return "origin differs"
        if not np.allclose(image.direction, mask.direction, atol=1e-3):
            return "direction differs"
    return None


def resample_mask_nearest(mask: Volume, image: Volume, dims: int) -> np.ndarray:
    """Mask values on the image grid by nearest neighbour (world coordinates in 3D)."""
    if dims == 2:
        from skimage.transform import resize

        target = image.array.shape[-2:]
        return resize(mask.array.reshape(mask.array.shape[-2:]), target, order=0, preserve_range=True,
                      anti_aliasing=False).astype(mask.array.dtype)
    import SimpleITK as sitk

    def to_sitk(volume: Volume, array: np.ndarray) -> "sitk.Image":
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing(tuple(float(s) for s in volume.spacing[::-1]))
        itk.SetOrigin(tuple(float(o) for o in volume.origin))
        itk.SetDirection(tuple(np.asarray(volume.direction)[:, ::-1].ravel().tolist()))
        return itk

    out = sitk.Resample(to_sitk(mask, mask.array), to_sitk(image, image.array.astype(np.float32)),
                        sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(out)


def aligned_mask(image: Volume, mask: Volume, dims: int, case_id: str, resample: bool) -> tuple[np.ndarray, str | None]:
    """Mask array on the image grid, plus a note when it had to be resampled."""
    problem = geometry_problem(image, mask, dims)
    if problem is None:
        return (mask.array if dims == 3 else mask.array.reshape(mask.array.shape[-2:])), None
    if not resample:
        raise InputError(f"case {case_id}: mask geometry differs from the image ({problem}); fix the export or "
                         "set data.resample_mask=true to resample it (nearest neighbour)",
                         Reason.GEOMETRY_MISMATCH.name)
    return resample_mask_nearest(mask, image, dims), f"{Reason.GEOMETRY_MISMATCH.name}({problem}; mask resampled)"
