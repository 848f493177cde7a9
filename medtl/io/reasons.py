"""Stable reason codes for everything an input can be refused or flagged for.

A ``Finding`` is one code plus a PHI-free detail (a number, a count, a tag name).
Codes are part of the public contract: they appear in ``skipped.csv``,
``series.csv``, ``scan.json`` and logs, so they never change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Reason(str, Enum):
    """Reason codes, with a one-line explanation each."""

    # files
    NOT_DICOM = "not a DICOM file (text, image, empty or random bytes)"
    NO_FILE_META = "DICOM without preamble/file meta (ACR-NEMA style)"
    GZIP_WRAPPED = "gzip-compressed file"
    DICOMDIR = "DICOMDIR index file"
    NON_IMAGE_SOP = "non-image DICOM object (SR, RTSTRUCT, SEG, PDF, ...)"
    HEADER_UNREADABLE = "DICOM header could not be parsed"
    MISSING_PIXEL_DATA = "image object without pixel data"
    TRUNCATED_PIXEL_DATA = "pixel data shorter than the header promises"
    DECODER_MISSING = "no decoder installed for the transfer syntax"
    DECODE_FAILED = "compressed pixel data could not be decoded"
    LOSSY_SOURCE = "pixel data was lossy compressed at some point"
    INVALID_VALUE = "a non-geometry tag holds an invalid value (ignored)"
    BAD_VALUE = "a geometry tag does not parse"
    TOO_LARGE = "decoding would exceed the per-volume memory limit (MEDTL_MAX_VOLUME_MB, default 2048)"
    NON_SCALAR_IMAGE = "colour image (RGB/YBR/palette) for a scalar pipeline"
    RGB_TO_LUMINANCE = "colour image converted to gray (0.299 R + 0.587 G + 0.114 B; data.rgb: luminance)"
    BURNED_IN_ANNOTATION = "header flags burned-in annotation"
    # series assembly
    SERIES_SPLIT = "one series held several volumes; split into sub-volumes"
    ENCODING_COPY = "the same series is also in the tree in another encoding (classic and enhanced); both load"
    DUPLICATE_DROPPED = "exact duplicate instance dropped"
    DUPLICATE_POSITION_CONFLICT = "two different images at the same position"
    SOP_INSTANCE_CONFLICT = "files share a SOPInstanceUID but hold different pixels; none of them is used"
    MISSING_SLICES = "gap in slice positions (missing slices)"
    IRREGULAR_SPACING = "slice spacing varies beyond tolerance"
    RESAMPLED_SLICES = "slices with gaps or unequal steps resampled onto a regular grid (linear, along the slice axis)"
    GANTRY_TILT = "slices are sheared (gantry tilt)"
    LOCALIZER = "localizer/scout image"
    TOO_FEW_SLICES = "too few slices for a 3D volume"
    DERIVED_OR_SC = "derived image, secondary capture or screenshot"
    NO_GEOMETRY = "no usable position/orientation/spacing"
    BAD_ORIENTATION = "degenerate ImageOrientationPatient"
    INCONSISTENT_MATRIX = "rows/columns/spacing differ inside a series"
    NO_PIXEL_SPACING = "no pixel spacing; 1 mm assumed for 2D use"
    MOSAIC_UNREADABLE = "Siemens mosaic whose slice count or geometry cannot be read; never used as a 2D image"
    # NIfTI and other formats
    QFORM_SFORM_MISMATCH = "NIfTI qform and sform disagree; sform used"
    NO_SPATIAL_TRANSFORM = "NIfTI qform and sform codes are both 0"
    SHEARED_AFFINE = "affine is sheared (non-orthogonal axes)"
    NIFTI_TRUNCATED = "NIfTI data ends early"
    NIFTI_MISSING_DATA = "NIfTI header without its data file"
    UNSUPPORTED_DIMENSIONS = "image dimensions do not fit (over 3 non-singleton, or a volume for a 2D model)"
    LABEL_NOT_INTEGER = "label image holds non-integer values"
    GEOMETRY_MISMATCH = "image and mask geometry differ"
    IMAGE_UNREADABLE = "image file could not be read"
    NON_FINITE_VALUES = "NaN or infinite values after rescaling (never passed to a model)"
    EMPTY_IMAGE = "image has no voxels (a dimension of size 0)"
    BROKEN_LINK = "symbolic link to nothing, or a link loop"
    SYMLINKED_FOLDER = "a link to a folder: not followed (links can loop or leave the export); scan its target"
    PERMISSION_DENIED = "file or folder cannot be read (permissions)"
    FILE_VANISHED = "file disappeared while the export was being read"
    COMPANION_FILE = "data file of a header/data pair, counted with its header"
    # manifests and outputs
    FILE_NOT_FOUND = "a file named in the manifest does not exist"
    NO_PATIENT_ID = "no patient_id in the manifest and no PatientID in the image header (PNG/JPEG carry none)"
    DICOM_SEG_FAILED = "DICOM-SEG could not be written for this series (the NIfTI mask was)"
    LOADER_CRASHED = "reading this series killed the process twice (native decoder crash); skipped on resume"
    ROI_MASK_MISSING = "data.roi: mask, but the case has no mask to crop around"
    ROI_MASK_EMPTY = "data.roi: mask, but the case's mask has no foreground to crop around"

    @property
    def code(self) -> str:
        return self.name


@dataclass(frozen=True)
class Finding:
    """One reason code with an optional PHI-free detail."""

    reason: Reason
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason.name}({self.detail})" if self.detail else self.reason.name


def format_findings(findings: list[Finding] | tuple[Finding, ...]) -> str:
    """``CODE(detail);CODE`` in first-seen order, each code once."""
    seen: dict[str, str] = {}
    for finding in findings:
        seen.setdefault(str(finding), "")
    return ";".join(seen)
