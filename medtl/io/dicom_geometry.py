"""Geometry of a stack of DICOM planes: slice order, spacing, gaps, tilt.

Slices are ordered by ImagePositionPatient projected on the slice normal
(row cosine x column cosine); InstanceNumber and file names are never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dicom_records import Frame
from .reasons import Finding, Reason

TILT_TOLERANCE_DEG = 0.1
# Positions are often rounded to 0.01 mm; a tilt must also shear the stack by more than this.
TILT_MIN_SHEAR_MM = 0.1
POSITION_DECIMALS = 2  # positions closer than 0.01 mm count as the same position


@dataclass
class StackGeometry:
    """Sorted frames plus the Volume geometry they define (see ``medtl.io.volume``)."""

    frames: list[Frame]
    spacing: tuple[float, ...]
    origin: tuple[float, float, float]
    direction: np.ndarray
    findings: list[Finding] = field(default_factory=list)


def slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def position_keys(frames: list[Frame]) -> list[float]:
    """Each frame's position along the slice normal, rounded so that equal means same place."""
    normal = slice_normal(frames[0].orientation)
    return [round(float(np.asarray(f.position) @ normal), POSITION_DECIMALS) for f in frames]


def plane_geometry(frame: Frame, findings: list[Finding]) -> StackGeometry:
    """Geometry of a single plane (2D image); flagged when the header lacks it."""
    spacing = frame.pixel_spacing
    if spacing is None:
        findings.append(Finding(Reason.NO_PIXEL_SPACING))
        spacing = (1.0, 1.0)
    if frame.orientation is None:
        direction = np.eye(3)
    else:
        row, col = np.asarray(frame.orientation[:3]), np.asarray(frame.orientation[3:])
        direction = np.stack([col, row, slice_normal(frame.orientation)], axis=1)
    origin = tuple(frame.position) if frame.position is not None else (0.0, 0.0, 0.0)
    return StackGeometry([frame], tuple(spacing), origin, direction, findings)


def stack_geometry(frames: list[Frame]) -> StackGeometry:
    """Sort planes along the normal and check spacing, gaps and tilt.

    Positions must be distinct (duplicates are resolved before this is called).
    """
    findings: list[Finding] = []
    row, col = np.asarray(frames[0].orientation[:3]), np.asarray(frames[0].orientation[3:])
    normal = slice_normal(frames[0].orientation)
    positions = np.array([f.position for f in frames], dtype=float)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    frames = [frames[i] for i in order]
    positions, along = positions[order], along[order]

    steps = np.diff(along)
    step = float(np.median(steps))
    tolerance = max(0.05, 0.01 * step)
    ratios = steps / step
    nearest = np.rint(ratios)
    is_gap = (nearest >= 2) & (np.abs(steps - nearest * step) <= tolerance * nearest)
    missing = int(np.sum(nearest[is_gap] - 1))
    if missing:
        findings.append(Finding(Reason.MISSING_SLICES, f"{missing} missing"))
    deviation = np.abs(steps[~is_gap] - step)
    if deviation.size and deviation.max() > tolerance:
        findings.append(Finding(Reason.IRREGULAR_SPACING, f"max deviation {deviation.max():.3f} mm"))

    span = positions[-1] - positions[0]
    cos_angle = abs(float(span @ normal)) / float(np.linalg.norm(span))
    angle = float(np.degrees(np.arccos(min(1.0, cos_angle))))
    slice_direction, slice_spacing = normal, step
    shear = float(np.linalg.norm(span - (span @ normal) * normal))
    if angle > TILT_TOLERANCE_DEG and shear > TILT_MIN_SHEAR_MM:
        findings.append(Finding(Reason.GANTRY_TILT, f"{angle:.2f} deg"))
        # Keep the true (sheared) slice axis rather than pretending the stack is orthogonal.
        slice_direction = span / np.linalg.norm(span)
        slice_spacing = step / cos_angle
    pixel_spacing = frames[0].pixel_spacing
    if pixel_spacing is None:
        findings.append(Finding(Reason.NO_PIXEL_SPACING))
        pixel_spacing = (1.0, 1.0)
    direction = np.stack([slice_direction, col, row], axis=1)
    spacing = (slice_spacing, float(pixel_spacing[0]), float(pixel_spacing[1]))
    return StackGeometry(frames, spacing, tuple(positions[0].tolist()), direction, findings)


def regular_grid(geometry: StackGeometry, array: np.ndarray) -> tuple[np.ndarray, StackGeometry, Finding] | None:
    """Resample a stack with gaps or unequal steps onto slices ``spacing[0]`` apart along its slice axis.

    Without it a volume built with the median step puts later slices where they are not
    (tens of millimetres off at the end of a long irregular stack). Each new slice is the
    linear interpolation of the two acquired slices around it; ``None`` when the stack
    is already regular.
    """
    codes = {f.reason for f in geometry.findings}
    if not codes & {Reason.IRREGULAR_SPACING, Reason.MISSING_SLICES} or array.shape[0] < 2:
        return None
    axis = geometry.direction[:, 0]
    origin = np.asarray(geometry.origin, dtype=float)
    actual = np.array([(np.asarray(f.position, dtype=float) - origin) @ axis for f in geometry.frames])
    step = float(geometry.spacing[0])
    count = int(round(actual[-1] / step)) + 1
    target = np.arange(count) * step
    where = np.interp(target, actual, np.arange(len(actual)))
    lower = np.clip(np.floor(where).astype(int), 0, len(actual) - 1)
    upper = np.minimum(lower + 1, len(actual) - 1)
    weight = (where - lower).astype(np.float32)[:, None, None]
    resampled = ((1 - weight) * array[lower] + weight * array[upper]).astype(np.float32)
    grid_error = float(np.max(np.abs(actual - np.arange(len(actual)) * step)))
    finding = Finding(Reason.RESAMPLED_SLICES, f"{len(actual)} slices -> {count} at {step:.3g} mm; a median-step "
                                               f"grid would misplace slices by up to {grid_error:.2f} mm")
    return resampled, geometry, finding
