"""Header-only indexing of one DICOM file.

``read_dicom_header(path)`` never raises for a bad file: it returns a ``DicomFile``
whose ``skip`` holds the reason code, or whose ``frames`` hold one ``Frame`` per
image plane (one for classic files, many for enhanced multi-frame). Pixel data is
not decoded; its element is only probed for presence, offset and truncation.
"""

from __future__ import annotations

import os
import struct
import warnings
from typing import Any, BinaryIO

from . import dicom_tags as tags
from .dicom_frames import NonFiniteRescale, classic_frames, enhanced_frames, mosaic_frames
from .dicom_mosaic import MosaicUnreadable, is_mosaic, mosaic_layout
from .dicom_records import DicomFile
from .dicom_values import HEADER_TAGS, HeaderValues
from .guards import MAX_FRAMES, size_problem
from .pseudonym import keyed_hash
from .reasons import Finding, Reason

_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UT", b"UC", b"UR"}
# Keys that may explain several images at one position (a 4th dimension), tried in order.
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
                ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=HEADER_TAGS)
                return _classify(info, HeaderValues(ds), f, include_derived)
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


SITE_FIELDS = ("Manufacturer", "ManufacturerModelName", "InstitutionName")


def site_key(ds: Any) -> str:
    """A keyed hash of the equipment and institution fields (empty when all are absent).

    Institution names identify hospitals, so only the hash (with the project salt)
    leaves memory; the same scanner model at the same institution gets the same key.
    """
    values = [tags.text(ds, keyword) or "" for keyword in SITE_FIELDS]
    return keyed_hash("\0".join(v.strip().lower() for v in values), "site") if any(values) else ""


def _classify(info: DicomFile, ds: HeaderValues, f: BinaryIO, include_derived: bool) -> DicomFile:
    meta = getattr(ds, "file_meta", None)
    meta = HeaderValues(meta) if meta else None
    media_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta else ""
    if media_class == tags.DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
        return info.skipped(Reason.DICOMDIR)
    info.sop_class_uid = str(ds.get("SOPClassUID", media_class) or media_class)
    info.sop_instance_uid = tags.text(ds, "SOPInstanceUID") or ""
    info.series_uid = tags.text(ds, "SeriesInstanceUID") or ""
    info.modality = (tags.text(ds, "Modality") or "").upper()
    patient_id = tags.text(ds, "PatientID")
    info.patient_key = keyed_hash(patient_id, "patient") if patient_id else ""
    info.site_key = site_key(ds)
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
    info.rows, info.columns = int(ds.get("Rows")), int(ds.get("Columns"))
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
        info.frames = enhanced_frames(info, ds.dataset) if info.enhanced else classic_frames(info, ds)
        if is_mosaic(ds):
            info.mosaic = mosaic_layout(_full_header(f))
            info.frames = mosaic_frames(info)
    except MosaicUnreadable as exc:
        return info.skipped(Reason.MOSAIC_UNREADABLE, str(exc)[:160])
    except NonFiniteRescale as exc:
        return info.skipped(Reason.NON_FINITE_VALUES, str(exc))
    except ValueError as exc:
        return info.skipped(Reason.BAD_VALUE, str(exc))
    return info


def _full_header(f: BinaryIO) -> Any:
    """Every element of the open file's header (a mosaic's geometry is in private CSA headers the inventory
    does not parse otherwise)."""
    import pydicom

    f.seek(0)
    return pydicom.dcmread(f, stop_before_pixels=True)


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


