"""Per-plane facts read from a header: geometry, rescale, and the keys that tell the volumes of a 4D series apart.

Classic files give one plane per frame, enhanced multi-frame files one per frame from
their functional groups, Siemens mosaics one per tile (``medtl.io.dicom_mosaic``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import dicom_tags as tags
from .dicom_mosaic import slice_positions
from .dicom_records import DicomFile, Frame
from .reasons import Finding, Reason

# DimensionIndexValues entries that place a frame within its volume, not choose the volume
_IN_VOLUME_POINTERS = {0x00209057, 0x00200032}  # InStackPositionNumber, ImagePositionPatient


def _orientation(value: tuple[float, ...] | None, findings: list[Finding]) -> tuple[float, ...] | None:
    """Unit row/column cosines, or ``None`` plus ``BAD_ORIENTATION`` when degenerate."""
    if value is None:
        return None
    row, col = np.asarray(value[:3]), np.asarray(value[3:])
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 0.9 or nc < 0.9 or nr > 1.1 or nc > 1.1 or abs(row @ col) / (nr * nc) > 0.01:
        findings.append(Finding(Reason.BAD_ORIENTATION))
        return None
    return tuple(np.concatenate([row / nr, col / nc]).tolist())


def _spacing(value: tuple[float, ...] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    if min(value) <= 0:
        raise ValueError("PixelSpacing")
    return (value[0], value[1])


def _fourth_keys(ds: Any) -> dict[str, Any]:
    keys = {"echo": ds.get("EchoNumbers"), "temporal": ds.get("TemporalPositionIdentifier"),
            "trigger": ds.get("TriggerTime"), "b_value": ds.get("DiffusionBValue"),
            "acquisition": ds.get("AcquisitionNumber")}
    gradient = ds.get("DiffusionGradientOrientation")
    if keys["b_value"] not in (None, "") and gradient not in (None, ""):
        keys["diffusion"] = diffusion_key(float(keys["b_value"]), tuple(float(g) for g in gradient))
    elif keys["b_value"] in (None, ""):
        vendor = _vendor_diffusion(ds)
        if vendor is not None:
            keys["b_value"], keys["diffusion"] = f"{vendor[0]:.0f}", diffusion_key(*vendor)
    return {k: str(v) for k, v in keys.items() if v not in (None, "")}


# Classic DTI from scanners that keep diffusion in private tags (as dcm2niix reads them):
# GE (0043,1039) first value = b-value (+1e9 on some software), gradient (0019,10BB/BC/BD);
# Philips (2001,1003) b-value, gradient (2005,10B0/B1/B2).
_VENDOR_DIFFUSION = (((0x0043, 0x1039), ((0x0019, 0x10BB), (0x0019, 0x10BC), (0x0019, 0x10BD))),
                     ((0x2001, 0x1003), ((0x2005, 0x10B0), (0x2005, 0x10B1), (0x2005, 0x10B2))))


def _private_numbers(ds: Any, tag: tuple[int, int]) -> list[float]:
    element = ds.get(tag)
    if element is None:
        return []
    value = element.value
    if isinstance(value, bytes):  # implicit VR files: private values arrive undecoded
        value = value.decode("latin-1").strip("\x00 ")
    if isinstance(value, str):
        value = value.split("\\")
    elif not isinstance(value, (list, tuple)) and not hasattr(value, "__len__"):
        value = [value]
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        return []


def _vendor_diffusion(ds: Any) -> tuple[float, tuple[float, ...] | None] | None:
    """(b-value, gradient direction) from a vendor's private tags, when the standard ones are absent."""
    for b_tag, gradient_tags in _VENDOR_DIFFUSION:
        b_values = _private_numbers(ds, b_tag)
        if not b_values:
            continue
        b_value = b_values[0] % 1e9 if b_values[0] >= 1e9 else b_values[0]
        gradient = [(_private_numbers(ds, t) or [None])[0] for t in gradient_tags]
        return b_value, (tuple(gradient) if None not in gradient else None)
    return None


def diffusion_key(b_value: float, gradient: tuple[float, ...] | None) -> str:
    """One diffusion volume: its b-value and gradient direction (rounded so jitter does not split a volume)."""
    direction = ",".join(f"{g:+.3f}" for g in gradient) if gradient is not None else "none"
    return f"b{b_value:.0f}:{direction}"


def mosaic_frames(info: DicomFile) -> list[Frame]:
    """One frame per tile, at the slice's own position (the header's position is the tiled image's corner)."""
    layout, template = info.mosaic, info.frames[0]
    fourth = dict(template.fourth)
    if layout.b_value is not None:
        fourth["b_value"] = f"{layout.b_value:.0f}"
        fourth["diffusion"] = diffusion_key(layout.b_value, layout.gradient)
    return [Frame(path=info.path, index=k, position=position, orientation=template.orientation,
                  pixel_spacing=template.pixel_spacing, slope=template.slope, intercept=template.intercept,
                  instance_number=float(k + 1), fourth=fourth)
            for k, position in enumerate(slice_positions(layout))]


class NonFiniteRescale(ValueError):
    """RescaleSlope/Intercept present but NaN, infinite, unparseable, or a slope of 0."""


def rescale(ds: Any) -> tuple[float, float]:
    """``(slope, intercept)``; absent means (1, 0), anything present must be a finite number (slope not 0).

    A bad value is never replaced by the default: the decoded values would be silently wrong.
    """
    values = []
    for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        raw = ds.get(keyword) if hasattr(ds, "get") else None
        if raw is None or raw == "":
            values.append(default)
            continue
        try:
            value = float(raw if isinstance(raw, (int, float, str)) else raw[0])
        except (TypeError, ValueError, IndexError):
            value = float("nan")
        if not math.isfinite(value) or (keyword == "RescaleSlope" and value == 0):
            raise NonFiniteRescale(f"{keyword} {raw!r}")
        values.append(value)
    return values[0], values[1]


def classic_frames(info: DicomFile, ds: Any) -> list[Frame]:
    """The planes of a classic file: one per frame, sharing the file's geometry and rescale."""
    findings = info.findings
    position = tags.geometry_floats(ds, "ImagePositionPatient", 3)
    orientation = _orientation(tags.geometry_floats(ds, "ImageOrientationPatient", 6), findings)
    spacing = _spacing(tags.geometry_floats(ds, "PixelSpacing", 2))
    if spacing is None and info.projection:
        spacing = _spacing(tags.geometry_floats(ds, "ImagerPixelSpacing", 2))
    slope, intercept = rescale(ds)
    common = dict(position=position, orientation=orientation, pixel_spacing=spacing, slope=slope,
                  intercept=intercept, instance_number=tags.number(ds, "InstanceNumber", findings),
                  fourth=_fourth_keys(ds))
    return [Frame(path=info.path, index=i, **common) for i in range(info.n_frames)]


def enhanced_frames(info: DicomFile, ds: Any) -> list[Frame]:
    """Per-frame geometry and rescale from the functional groups (shared, then per-frame)."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    per_frame = ds.PerFrameFunctionalGroupsSequence
    pointers = [int(item.DimensionIndexPointer) for item in ds.get("DimensionIndexSequence") or []
                if "DimensionIndexPointer" in item]
    volume_dimensions = [i for i, pointer in enumerate(pointers) if pointer not in _IN_VOLUME_POINTERS]
    frames = []
    for index in range(info.n_frames):
        group = per_frame[index] if index < len(per_frame) else None

        def item(sequence: str) -> Any:
            for source in (group, shared):
                if source is not None and sequence in source and len(source[sequence].value):
                    return source[sequence][0]
            return {}

        content = item("FrameContentSequence")
        frame_type = (item("MRImageFrameTypeSequence") or item("CTImageFrameTypeSequence") or {}).get("FrameType")
        indices = content.get("DimensionIndexValues")
        indices = [indices] if isinstance(indices, int) else list(indices or [])
        dimension = ",".join(str(indices[i]) for i in volume_dimensions if i < len(indices)) or None
        fourth = {"dimension": dimension, "stack": content.get("StackID"),
                  "temporal": content.get("TemporalPositionIndex"),
                  "frame_type": "\\".join(map(str, frame_type)) if frame_type else None,
                  "echo": item("MREchoSequence").get("EffectiveEchoTime"),
                  "b_value": item("MRDiffusionSequence").get("DiffusionBValue"),
                  "trigger": item("CardiacSynchronizationSequence").get("NominalCardiacTriggerDelayTime")}
        transform = item("PixelValueTransformationSequence")
        frames.append(Frame(
            path=info.path, index=index,
            position=tags.geometry_floats(item("PlanePositionSequence"), "ImagePositionPatient", 3),
            orientation=_orientation(
                tags.geometry_floats(item("PlaneOrientationSequence"), "ImageOrientationPatient", 6),
                info.findings if index == 0 else []),
            pixel_spacing=_spacing(tags.geometry_floats(item("PixelMeasuresSequence"), "PixelSpacing", 2)),
            slope=rescale(transform)[0], intercept=rescale(transform)[1],
            instance_number=float(content.get("InStackPositionNumber") or index + 1),
            fourth={k: str(v) for k, v in fourth.items() if v not in (None, "")},
        ))
    if info.slice_thickness is None and shared is not None and "PixelMeasuresSequence" in shared:
        info.slice_thickness = tags.number(shared.PixelMeasuresSequence[0], "SliceThickness", [])
    return frames
