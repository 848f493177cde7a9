"""Guards applied before and after decoding: bounded memory, finite values.

The size guard is checked from headers, before any pixel is decoded. It counts the
float32 bytes of the decoded volume times the copies the pipeline makes of it
(decode, physical values, preprocessing), so a small file that declares a huge
image is refused as ``TOO_LARGE`` instead of exhausting memory. The limit is
``MEDTL_MAX_VOLUME_MB`` (default 2048 MB per volume).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InputError
from .reasons import Reason

DEFAULT_MAX_VOLUME_MB = 2048
PIPELINE_COPIES = 3  # decoded values, float32 physical values, the preprocessing's working copy
MAX_FRAMES = 100_000


def max_volume_bytes() -> int:
    """The per-volume memory limit in bytes (``MEDTL_MAX_VOLUME_MB``)."""
    text = os.environ.get("MEDTL_MAX_VOLUME_MB", "").strip()
    try:
        megabytes = float(text) if text else DEFAULT_MAX_VOLUME_MB
    except ValueError:
        raise InputError(f"MEDTL_MAX_VOLUME_MB={text!r} is not a number of megabytes; unset it or use e.g. 4096")
    return int(megabytes * 1024 * 1024)


def size_problem(shape, what: str = "image") -> str | None:
    """Why a volume of ``shape`` may not be decoded (``None``: it may)."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        return f"{what} declares a negative size {tuple(dims)}"
    needed = math.prod(dims) * 4 * PIPELINE_COPIES
    limit = max_volume_bytes()
    if needed > limit:
        return (f"{what} of {'x'.join(map(str, dims))} voxels needs about {needed / 2**20:,.0f} MB "
                f"(float32, {PIPELINE_COPIES} copies), over the {limit / 2**20:,.0f} MB limit "
                "(raise MEDTL_MAX_VOLUME_MB if the machine has the memory)")
    return None


def prediction_copies(num_classes: int, kept_members: int = 0) -> int:
    """float32 copies of a network-grid volume that sliding-window prediction of a segmentation holds at once.

    The input image (1) and the probabilities (``classes``: MONAI stitches the logits in
    place, the softmax of each fold model is added to the running ensemble in place and
    freed); and, when each fold model is scored against a truth mask (``medtl evaluate``),
    every member's probabilities (``members x classes``). Measured per extra voxel with 3
    fold models and 2 classes (``benchmarks/predict_memory.py``): 2.2 copies (this counts 3),
    7.0 with the members kept (this counts 9); the previous code held 19.1.
    """
    return 1 + num_classes + kept_members * num_classes


def prediction_problem(network_shape, original_shape, num_classes: int, kept_members: int = 0) -> str | None:
    """Why predicting a segmentation of ``network_shape`` (and writing it on ``original_shape``) would exceed the
    per-volume memory limit (``None``: it would not). Counts ``prediction_copies`` on the network grid plus the
    probabilities (``classes``) and label map on the original grid."""
    network, original = math.prod(int(d) for d in network_shape), math.prod(int(d) for d in original_shape)
    copies = prediction_copies(num_classes, kept_members)
    needed = network * 4 * copies + original * (4 * num_classes + 1)
    limit = max_volume_bytes()
    if needed <= limit:
        return None
    return (f"predicting {'x'.join(map(str, network_shape))} voxels with {num_classes} classes needs about "
            f"{needed / 2**20:,.0f} MB ({copies} float32 copies of the volume"
            + (f", {kept_members} fold models scored one by one" if kept_members else "")
            + f", and the result on the original grid), over the {limit / 2**20:,.0f} MB limit (raise "
            "MEDTL_MAX_VOLUME_MB if the machine has the memory, or predict with --fold K)")


def check_size(shape, where: str) -> None:
    """Raise ``TOO_LARGE`` when a volume of ``shape`` would exceed the memory limit."""
    problem = size_problem(shape)
    if problem:
        raise InputError(f"{where}: {problem}", Reason.TOO_LARGE.name)


def check_finite(array: np.ndarray, where: str) -> None:
    """Raise ``NON_FINITE_VALUES`` when ``array`` holds NaN or infinity (never passed to a model)."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise InputError(f"{where}: {bad} voxel(s) are NaN or infinite (e.g. a NaN/inf rescale slope or NaN "
                         "voxels); fix the source data", Reason.NON_FINITE_VALUES.name)
