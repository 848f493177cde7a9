"""``network_input``: a loaded Volume (and mask) -> the network's input, plus what maps outputs back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..errors import InputError
from ..io.guards import check_finite
from ..io.reasons import Reason
from ..io.volume import Volume
from .geometry import aligned_mask, squeeze_2d


@dataclass
class NetworkInput:
    """A volume preprocessed for the network, plus what is needed to map outputs back."""

    sample: dict  # MONAI pipeline output: "image" (and "mask") at network resolution
    input_affine: np.ndarray  # 4x4 index -> world of the array fed in (identity for 2D)
    input_shape: tuple[int, ...]  # that array's shape: the original grid
    notes: list[str]
    mask: np.ndarray | None = None  # the mask on the original grid (after alignment)

    @property
    def network_affine(self) -> np.ndarray:
        return np.asarray(self.sample["image"].affine, dtype=float)

    def network_spacing(self, image: Volume, resized: bool = True) -> tuple[float, ...]:
        """mm per voxel at network resolution (2D: the image's own unless ``resized``; crops keep it)."""
        if len(self.input_shape) == 3:
            return tuple(float(s) for s in np.linalg.norm(self.network_affine[:3, :3], axis=0))
        if not resized:
            return tuple(float(s) for s in image.spacing[-2:])
        scale = np.asarray(self.input_shape) / np.asarray(self.sample["image"].shape[1:])
        return tuple(float(s) for s in np.asarray(image.spacing[-2:]) * scale)


def needs_mask(config: Config) -> bool:
    """Whether preparing a case reads its mask: as the target (segmentation) or as the ROI to crop around."""
    from ..tasks import task_of

    return task_of(config).uses_mask or config.data.roi == "mask"


def network_input(image: Volume, config: Config, case_id: str, mask: Volume | None = None) -> NetworkInput:
    """Run the deterministic preprocessing of ``config`` on ``image`` (and its mask).

    The one preprocessing function: ``cv`` (cached per case), ``predict``, ``evaluate`` and
    export all call it, so a model always sees inputs prepared the same way.
    """
    from .presets import preprocess_pipeline, to_metatensor

    dims = config.data.dims
    notes = [code for code in image.reason_codes if code not in ("SERIES_SPLIT",)]
    if dims == 2:
        array, affine = squeeze_2d(image, "image", case_id), None
    else:
        if image.ndim != 3 or image.array.shape[0] < 3:
            raise InputError(f"case {case_id}: image shape {image.array.shape} is too thin for a 3D task",
                             Reason.TOO_FEW_SLICES.name)
        array, affine = image.array, image.affine
    sample = {"image": to_metatensor(array.astype(np.float32), affine)}
    mask_array = None
    if mask is None and config.data.roi == "mask":
        raise InputError(f"case {case_id}: data.roi is mask, but the case has no mask; give every case a mask "
                         "(the manifest's mask column) or use data.roi: center / none", Reason.ROI_MASK_MISSING.name)
    if mask is not None:
        mask_array, note = aligned_mask(image, mask, dims, case_id, config.data.resample_mask)
        if note:
            notes.append(note)
        if config.data.roi == "mask" and not mask_array.any():
            raise InputError(f"case {case_id}: data.roi is mask, but its mask has no foreground to crop around",
                             Reason.ROI_MASK_EMPTY.name)
        sample["mask"] = to_metatensor(mask_array.astype(np.float32), affine)
    out = preprocess_pipeline(config.data, mask is not None)(sample)
    check_finite(np.asarray(out["image"]), f"case {case_id} after preprocessing (e.g. a constant image)")
    return NetworkInput(out, np.eye(4) if affine is None else affine, tuple(array.shape), notes, mask_array)
