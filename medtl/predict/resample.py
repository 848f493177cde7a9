"""Network-resolution probabilities back onto each input's original grid.

The preprocessing records two index->world affines: the input array's and the
network grid's (MONAI updates it through spacing and resizing). Probabilities are
interpolated linearly at every original voxel, then the argmax is taken there, so
masks follow the original geometry exactly and boundaries stay smooth.
"""

from __future__ import annotations

import numpy as np


def _homogeneous(affine: np.ndarray, dims: int) -> np.ndarray:
    affine = np.asarray(affine, dtype=float)
    out = np.eye(dims + 1)
    out[:dims, :dims] = affine[:dims, :dims]
    out[:dims, dims] = affine[:dims, -1]
    return out


def to_original_grid(channels: np.ndarray, network_affine: np.ndarray, input_affine: np.ndarray,
                     input_shape: tuple[int, ...]) -> np.ndarray:
    """``(C, *network)`` -> ``(C, *input_shape)`` float32, linear interpolation."""
    from scipy.ndimage import affine_transform

    dims = len(input_shape)
    # input index -> world -> network index
    mapping = np.linalg.inv(_homogeneous(network_affine, dims)) @ _homogeneous(input_affine, dims)
    out = np.empty((len(channels), *input_shape), dtype=np.float32)
    for c, channel in enumerate(channels):
        affine_transform(np.asarray(channel, dtype=np.float32), mapping[:dims, :dims], offset=mapping[:dims, dims],
                         output_shape=tuple(input_shape), output=out[c], order=1, mode="nearest")
    return out


def labels_on_original_grid(probabilities: np.ndarray, network_affine: np.ndarray, input_affine: np.ndarray,
                            input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Label map (uint8) and foreground probabilities ``(C-1, *input_shape)`` on the original grid."""
    if len(probabilities) == 2:  # binary: one channel suffices (argmax == p1 > 0.5)
        foreground = to_original_grid(probabilities[1:], network_affine, input_affine, input_shape)
        return (foreground[0] > 0.5).astype(np.uint8), foreground
    full = to_original_grid(probabilities, network_affine, input_affine, input_shape)
    return full.argmax(0).astype(np.uint8), full[1:]
