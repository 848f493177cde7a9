"""Header-only indexing of one DICOM file.

``read_dicom_header(path)`` never raises for a bad file: it returns a ``DicomFile``
whose ``skip`` holds the reason code, or whose ``frames`` hold one ``Frame`` per
image plane (one for classic files, many for enhanced multi-frame). Pixel data is
not decoded; its element is only probed for presence, offset and truncation.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from . import dicom_tags as tags
from .dicom_mosaic import MosaicUnreadable, is_mosaic, mosaic_layout, slice_positions
from .guards import MAX_FRAMES, size_problem
from .pseudonym import keyed_hash
from .reasons import Finding, Reason

_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UT", b"UC", b"UR"}
# Keys that may explain several images at one position (a 4th dimension), tried in order.
FOURTH_DIMENSION_KEYS = ("echo", "frame_type", "temporal", "trigger", "b_value", "diffusion", "acquisition", "stack",
                         "dimension")
# DimensionIndexValues entries that place a frame within its volume, not choose the volume
_IN_VOLUME_POINTERS = {0x00209057, 0x00200032}  # InStackPositionNumber, ImagePositionPatient


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


def read_dicom_header(path: str | os.PathLike, include_derived: bool = False) -> DicomFile:
    """Index one file; bad files come back with ``skip`` set, never as an exception."""
    import pydicom

    path = os.fspath(path)
    try:
        info = DicomFile(path=path, size=os.path.getsize(path))
        handle = open(path, "rb")
    except OSError as exc:
        return DicomFile(path=path, size=0).skipped(*file_access_problem(path, exc))
    if info.size == 0:
        handle.close()
        return info.skipped(Reason.NOT_DICOM, "empty file")
    with handle as f:
        head = f.read(132)
        if head[:2] == b"\x1f\x8b":
            return info.skipped(Reason.GZIP_WRAPPED)
        if head[128:132] != b"DICM":
            if _looks_like_raw_dataset(head):
                return info.skipped(Reason.NO_FILE_META)
            return info.skipped(Reason.NOT_DICOM, _not_dicom_hint(head))
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                return _classify(info, ds, f, include_derived)
        # A hostile or broken header can raise anything from the parser; the batch must go on.
        except Exception as exc:  # noqa: BLE001
            return info.skipped(Reason.HEADER_UNREADABLE, type(exc).__name__)


def file_access_problem(path: str, exc: OSError) -> tuple[Reason, str]:
    """The reason code of a file that cannot be opened: broken link, permissions, or gone."""
    import errno

    if os.path.islink(path) and (not os.path.exists(path) or exc.errno == errno.ELOOP):
        return Reason.BROKEN_LINK, "link target missing or a link loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Reason.PERMISSION_DENIED, "no read permission"
    if exc.errno == errno.ENOENT:
        return Reason.FILE_VANISHED, "deleted while the export was read"
    return Reason.IMAGE_UNREADABLE, type(exc).__name__


_IMAGE_MAGIC = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                (b"BM", "BMP"))


def _not_dicom_hint(head: bytes) -> str:
    """What a non-DICOM file is, when it is an image medtl can read through a manifest."""
    kind = next((name for magic, name in _IMAGE_MAGIC if head.startswith(magic)), None)
    return f"{kind} image: list it in a manifest (image column) to use it" if kind else ""


def _looks_like_raw_dataset(head: bytes) -> bool:
    """ACR-NEMA style: the file starts with a group 0x0008 (or 0x0000) tag."""
    if len(head) < 8:
        return False
    group, element = struct.unpack("<HH", head[:4])
    return group in (0x0000, 0x0008) and element < 0x0200


def _classify(info: DicomFile, ds: Any, f: BinaryIO, include_derived: bool) -> DicomFile:
    meta = getattr(ds, "file_meta", None)
    media_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta else ""
    if media_class == tags.DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
        return info.skipped(Reason.DICOMDIR)
    info.sop_class_uid = str(ds.get("SOPClassUID", media_class) or media_class)
    info.sop_instance_uid = tags.text(ds, "SOPInstanceUID") or ""
    info.series_uid = tags.text(ds, "SeriesInstanceUID") or ""
    info.modality = (tags.text(ds, "Modality") or "").upper()
    patient_id = tags.text(ds, "PatientID")
    info.patient_key = keyed_hash(patient_id, "patient") if patient_id else ""
    class_name = tags.sop_class_name(info.sop_class_uid)
    if tags.is_non_image_sop(info.sop_class_uid):
        return info.skipped(Reason.NON_IMAGE_SOP, class_name)
    if "Rows" not in ds or "Columns" not in ds:
        if class_name.endswith("Image Storage"):
            return info.skipped(Reason.MISSING_PIXEL_DATA, "no Rows/Columns")
        return info.skipped(Reason.NON_IMAGE_SOP, class_name)
    info.transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta else ""
    implicit, little = ds.original_encoding
    info.little_endian = little is not False
    findings = info.findings
    info.rows, info.columns = int(ds.Rows), int(ds.Columns)
    frames = tags.number(ds, "NumberOfFrames", findings, 1)
    info.n_frames = 1 if frames is None else int(frames)
    info.samples_per_pixel = int(tags.number(ds, "SamplesPerPixel", findings, 1) or 1)
    info.photometric = (tags.text(ds, "PhotometricInterpretation") or "MONOCHROME2").upper()
    info.bits_allocated = int(tags.number(ds, "BitsAllocated", findings, 16) or 16)
    info.bits_stored = int(tags.number(ds, "BitsStored", findings, info.bits_allocated) or info.bits_allocated)
    info.pixel_representation = int(tags.number(ds, "PixelRepresentation", findings, 0) or 0)
    info.image_type = tags.multi_text(ds, "ImageType")
    info.slice_thickness = tags.number(ds, "SliceThickness", findings)
    info.padding_value = tags.number(ds, "PixelPaddingValue", findings)
    info.has_modality_lut_sequence = "ModalityLUTSequence" in ds

    expected = info.rows * info.columns * info.n_frames * info.samples_per_pixel
    if info.rows <= 0 or info.columns <= 0:
        return info.skipped(Reason.BAD_VALUE, "Rows/Columns")
    if info.n_frames < 1:
        return info.skipped(Reason.BAD_VALUE, f"NumberOfFrames {info.n_frames}")
    if info.n_frames > MAX_FRAMES:
        return info.skipped(Reason.TOO_LARGE, f"{info.n_frames} frames (limit {MAX_FRAMES})")
    too_large = size_problem((info.n_frames, info.rows, info.columns, info.samples_per_pixel))
    if too_large:
        return info.skipped(Reason.TOO_LARGE, too_large)
    skip = _probe_pixel_data(info, f, implicit, expected)
    if skip is not None:
        return info.skipped(*skip)
    problem = tags.decoder_problem(info.transfer_syntax) if info.transfer_syntax else None
    if problem:
        return info.skipped(Reason.DECODER_MISSING, problem)
    if info.photometric not in tags.SCALAR_PHOTOMETRIC or info.samples_per_pixel != 1:
        return info.skipped(Reason.NON_SCALAR_IMAGE, info.photometric)
    if "LOCALIZER" in info.image_type:
        return info.skipped(Reason.LOCALIZER)
    if not include_derived and _is_derived(info):
        return info.skipped(Reason.DERIVED_OR_SC, "/".join(info.image_type[:3]) or "secondary capture")
    if str(ds.get("LossyImageCompression", "")).strip() == "01" or info.transfer_syntax in tags.LOSSY_SYNTAXES:
        findings.append(Finding(Reason.LOSSY_SOURCE))
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        findings.append(Finding(Reason.BURNED_IN_ANNOTATION))
    try:
        info.enhanced = "PerFrameFunctionalGroupsSequence" in ds
        info.frames = _enhanced_frames(info, ds) if info.enhanced else _classic_frames(info, ds)
        if is_mosaic(ds):
            info.mosaic = mosaic_layout(ds)
            info.frames = _mosaic_frames(info)
    except MosaicUnreadable as exc:
        return info.skipped(Reason.MOSAIC_UNREADABLE, str(exc)[:160])
    except NonFiniteRescale as exc:
        return info.skipped(Reason.NON_FINITE_VALUES, str(exc))
    except ValueError as exc:
        return info.skipped(Reason.BAD_VALUE, str(exc))
    return info


def _is_derived(info: DicomFile) -> bool:
    if info.sop_class_uid.startswith(tags.SECONDARY_CAPTURE_PREFIX):
        return True
    if "SECONDARY" in info.image_type[1:2]:
        return True
    return bool(info.image_type) and info.image_type[0] == "DERIVED" and not info.projection


def _probe_pixel_data(info: DicomFile, f: BinaryIO, implicit: bool | None, n_values: int):
    """Find the pixel data element after the header; ``(reason, detail)`` when it is missing or short."""
    if info.transfer_syntax == "1.2.840.10008.1.2.1.99":  # deflated: offsets are meaningless
        return None
    start = f.tell()
    header = f.read(8)
    if len(header) < 8:
        return (Reason.MISSING_PIXEL_DATA, "")
    endian = "<" if info.little_endian else ">"
    group, element = struct.unpack(endian + "HH", header[:4])
    if (group, element) not in _PIXEL_TAGS:
        return (Reason.MISSING_PIXEL_DATA, "")
    if implicit:
        (length,) = struct.unpack(endian + "I", header[4:8])
        value_offset = start + 8
    elif header[4:6] in _LONG_VRS:
        (length,) = struct.unpack(endian + "I", f.read(4))
        value_offset = start + 12
    else:
        (length,) = struct.unpack(endian + "H", header[6:8])
        value_offset = start + 8
    if length == 0xFFFFFFFF:
        return None if _fragments_complete(f, info.size) else (Reason.TRUNCATED_PIXEL_DATA, "encapsulated")
    if length == 0:
        return (Reason.MISSING_PIXEL_DATA, "empty element")
    needed = (n_values * info.bits_allocated + 7) // 8
    available = min(length, info.size - value_offset)
    if available < needed:
        return (Reason.TRUNCATED_PIXEL_DATA, f"{available} of {needed} bytes")
    if not tags.decoder_problem(info.transfer_syntax or "1.2.840.10008.1.2.1"):
        info.pixel_offset, info.pixel_length = value_offset, needed
    return None


def _fragments_complete(f: BinaryIO, size: int) -> bool:
    """Walk encapsulated items to the sequence delimiter without reading their data."""
    while True:
        item = f.read(8)
        if len(item) < 8:
            return False
        group, element, length = struct.unpack("<HHI", item)
        if (group, element) == (0xFFFE, 0xE0DD):
            return True
        if (group, element) != (0xFFFE, 0xE000) or f.tell() + length > size:
            return False
        f.seek(length, os.SEEK_CUR)


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


def _mosaic_frames(info: DicomFile) -> list[Frame]:
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


def _rescale(ds: Any) -> tuple[float, float]:
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


def _classic_frames(info: DicomFile, ds: Any) -> list[Frame]:
    findings = info.findings
    position = tags.geometry_floats(ds, "ImagePositionPatient", 3)
    orientation = _orientation(tags.geometry_floats(ds, "ImageOrientationPatient", 6), findings)
    spacing = _spacing(tags.geometry_floats(ds, "PixelSpacing", 2))
    if spacing is None and info.projection:
        spacing = _spacing(tags.geometry_floats(ds, "ImagerPixelSpacing", 2))
    slope, intercept = _rescale(ds)
    common = dict(position=position, orientation=orientation, pixel_spacing=spacing, slope=slope,
                  intercept=intercept, instance_number=tags.number(ds, "InstanceNumber", findings),
                  fourth=_fourth_keys(ds))
    return [Frame(path=info.path, index=i, **common) for i in range(info.n_frames)]


def _enhanced_frames(info: DicomFile, ds: Any) -> list[Frame]:
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
            slope=_rescale(transform)[0], intercept=_rescale(transform)[1],
            instance_number=float(content.get("InStackPositionNumber") or index + 1),
            fourth={k: str(v) for k, v in fourth.items() if v not in (None, "")},
        ))
    if info.slice_thickness is None and shared is not None and "PixelMeasuresSequence" in shared:
        info.slice_thickness = tags.number(shared.PixelMeasuresSequence[0], "SliceThickness", [])
    return frames
