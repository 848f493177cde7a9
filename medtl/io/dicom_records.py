"""The records one DICOM file's header becomes: its planes (``Frame``) and the facts about the file (``DicomFile``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import dicom_tags as tags
from .reasons import Finding, Reason

FOURTH_DIMENSION_KEYS = ("echo", "frame_type", "temporal", "trigger", "b_value", "diffusion", "acquisition", "stack",
                         "dimension")


@dataclass
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


@dataclass
class DicomFile:
    """Everything medtl needs from one file's header (raw UIDs stay in memory only)."""

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


