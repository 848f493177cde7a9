"""The records one DICOM file's header becomes: its planes (``Frame``) and the facts about the file (``DicomFile``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import dicom_tags as tags
from .reasons import Finding, Reason

FOURTH_DIMENSION_KEYS = ("echo", "frame_type", "temporal", "trigger", "b_value", "diffusion", "acquisition", "stack",
                         "dimension")


@dataclass(slots=True)
class Frame:
    """One image plane: where it is and how its stored values map to physical values."""

    path: str
    index: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slope: float = 1.0
    intercept: float = 0.0
    instance_number: float | None = None
    fourth: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DicomFile:
    """Everything medtl needs from one file's header (raw UIDs stay in memory only).

    Slotted, and its repeated values shared (``compact_records``): a scan holds one per file.
    """

    path: str
    size: int
    skip: Finding | None = None
    findings: list[Finding] = field(default_factory=list)
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    series_uid: str = ""
    patient_key: str = ""
    site_key: str = ""  # keyed hash of Manufacturer, ManufacturerModelName, InstitutionName (never in clear)
    modality: str = ""
    transfer_syntax: str = ""
    rows: int = 0
    columns: int = 0
    n_frames: int = 1
    samples_per_pixel: int = 1
    photometric: str = ""
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    image_type: tuple[str, ...] = ()
    slice_thickness: float | None = None
    padding_value: float | None = None
    has_modality_lut_sequence: bool = False
    enhanced: bool = False
    pixel_offset: int | None = None
    pixel_length: int | None = None
    little_endian: bool = True
    frames: list[Frame] = field(default_factory=list)
    mosaic: Any = None  # MosaicLayout of a Siemens mosaic (its frames are the unpacked slices)

    @property
    def plane_shape(self) -> tuple[int, int]:
        """Rows and columns of one image plane (a mosaic's tile, not its tiled frame)."""
        if self.mosaic is not None:
            return self.mosaic.tile_rows, self.mosaic.tile_columns
        return self.rows, self.columns

    @property
    def projection(self) -> bool:
        return self.modality in tags.PROJECTION_MODALITIES

    @property
    def native_dtype(self) -> np.dtype | None:
        """numpy dtype of uncompressed stored values, ``None`` when pydicom must decode."""
        if self.pixel_offset is None or self.bits_allocated not in (8, 16, 32):
            return None
        kind = "i" if self.pixel_representation == 1 else "u"
        order = "<" if self.little_endian else ">"
        return np.dtype(f"{order}{kind}{self.bits_allocated // 8}")

    def skipped(self, reason: Reason, detail: str = "") -> "DicomFile":
        self.skip = Finding(reason, detail)
        return self


def series_group(info: DicomFile) -> str:
    """The key files are grouped by before assembly: the SeriesInstanceUID (a file without one is a group alone)."""
    return info.series_uid or f"no-series-uid:{info.path}"


def compact_record(info: DicomFile, shared: dict) -> DicomFile:
    """``info`` with its repeated values replaced by the equal ones in ``shared`` (and added there): the series,
    patient, site, class and syntax strings, image types, orientations, spacings and 4D keys repeat across the
    files of a series, and a scan keeps every record until its series are assembled (unpickled from the
    workers, each copy would be an object of its own). The 4D-key dicts are shared: read-only after indexing."""
    def one(value):  # keyed by type and repr: 1 and 1.0, or 0.0 and -0.0, stay what they were
        return shared.setdefault((type(value), repr(value)), value) if value is not None else None

    for name in ("series_uid", "patient_key", "site_key", "modality", "transfer_syntax", "sop_class_uid",
                 "photometric", "image_type", "slice_thickness", "padding_value", "size", "pixel_offset",
                 "pixel_length"):
        setattr(info, name, one(getattr(info, name)))
    for frame in info.frames:
        frame.path = info.path
        frame.orientation, frame.pixel_spacing = one(frame.orientation), one(frame.pixel_spacing)
        frame.slope, frame.intercept = one(frame.slope), one(frame.intercept)
        frame.instance_number = one(frame.instance_number)
        frame.fourth = shared.setdefault(("fourth", tuple(sorted(frame.fourth.items()))), frame.fourth)
    return info
