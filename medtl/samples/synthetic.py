"""Synthetic DICOM writers: CT-like series, enhanced multi-frame CT, radiographs.

Used by tests, benchmarks and ``sample_data/``. Output is deterministic for a given
``seed`` (UIDs are derived from it), and never holds real patient data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
UID_PREFIX = "1.2.826.0.1.3680043.10.1447."


def uid(*parts: object) -> str:
    """Deterministic UID from ``parts``."""
    from pydicom.uid import generate_uid

    return generate_uid(UID_PREFIX, entropy_srcs=[str(p) for p in parts])


@dataclass
class SeriesSpec:
    """What to write: stored values ``(slices, rows, cols)`` and their geometry."""

    stored: np.ndarray
    spacing: tuple[float, float, float] = (2.5, 0.7, 0.7)  # slice, row, column (mm)
    origin: tuple[float, float, float] = (-120.0, -130.0, -40.0)
    row_cosine: tuple[float, float, float] = (1.0, 0.0, 0.0)
    column_cosine: tuple[float, float, float] = (0.0, 1.0, 0.0)
    slope: float | list[float] = 1.0
    intercept: float | list[float] = -1024.0
    modality: str = "CT"
    patient_id: str = "SYNTH0001"
    patient_name: str = "SYNTHETIC^PATIENT"
    seed: int = 0
    series_number: int = 1
    slice_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # extra per-slice shift (gantry tilt)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cosine, self.column_cosine)

    def position(self, index: int) -> np.ndarray:
        return (np.asarray(self.origin) + index * self.spacing[0] * self.normal
                + index * np.asarray(self.slice_offset))


def _base_dataset(sop_class: str, sop_uid: str, modality: str, patient_id: str, patient_name: str, seed: int):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, sop_uid, modality
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient_id, patient_name, "19700101", "O"
    ds.StudyInstanceUID = uid("study", patient_id, seed)
    ds.StudyDate, ds.AccessionNumber, ds.StudyID = "20240101", f"ACC{seed:06d}", "1"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    return ds


def _set_pixels(ds, stored: np.ndarray, bits_stored: int | None = None) -> None:
    signed = stored.dtype.kind == "i"
    ds.BitsAllocated = stored.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<")).tobytes()


def write_series(folder: str | os.PathLike, spec: SeriesSpec, *, shuffle: bool = True,
                 instance_numbers: str = "ordered", bits_stored: int | None = None,
                 edit: Callable[[object, int], None] | None = None) -> list[Path]:
    """Write one classic single-frame series; ``edit(ds, index)`` may alter each slice.

    ``instance_numbers``: ``ordered``, ``shuffled`` (not spatial) or ``missing``.
    File names are opaque hex when ``shuffle`` (order must come from geometry).
    """
    rng = np.random.default_rng(spec.seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = uid("series", spec.patient_id, spec.seed, spec.series_number)
    n = spec.stored.shape[0]
    numbers = rng.permutation(n) + 1 if instance_numbers == "shuffled" else np.arange(1, n + 1)
    slopes = np.broadcast_to(np.asarray(spec.slope, dtype=float), (n,))
    intercepts = np.broadcast_to(np.asarray(spec.intercept, dtype=float), (n,))
    paths = []
    for index in range(n):
        sop_uid = uid("sop", series_uid, index)
        ds = _base_dataset(CT_IMAGE_STORAGE if spec.modality == "CT" else "1.2.840.10008.5.1.4.1.1.4",
                           sop_uid, spec.modality, spec.patient_id, spec.patient_name, spec.seed)
        ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, spec.series_number
        ds.FrameOfReferenceUID = uid("for", series_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        if instance_numbers != "missing":
            ds.InstanceNumber = int(numbers[index])
        ds.ImagePositionPatient = [round(float(v), 4) for v in spec.position(index)]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*spec.row_cosine, *spec.column_cosine)]
        ds.PixelSpacing = [spec.spacing[1], spec.spacing[2]]
        ds.SliceThickness = spec.spacing[0]
        ds.Rows, ds.Columns = spec.stored.shape[1:]
        ds.RescaleSlope, ds.RescaleIntercept = f"{slopes[index]:.6g}", f"{intercepts[index]:.6g}"
        _set_pixels(ds, spec.stored[index], bits_stored)
        if edit is not None:
            edit(ds, index)
        # Random-looking names derived from the final UID: unique, and useless for ordering.
        name = hashlib.sha1(str(ds.SOPInstanceUID).encode()).hexdigest()[:16] if shuffle else f"slice_{index:04d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced_ct(path: str | os.PathLike, spec: SeriesSpec, frame_order: list[int] | None = None) -> Path:
    """Write an enhanced CT multi-frame file with per-frame position and rescale."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    n = spec.stored.shape[0]
    order = list(range(n)) if frame_order is None else list(frame_order)
    series_uid = uid("series", spec.patient_id, spec.seed, spec.series_number)
    ds = _base_dataset(ENHANCED_CT_STORAGE, uid("sop", series_uid, "mf"), "CT", spec.patient_id,
                       spec.patient_name, spec.seed)
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, spec.series_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.NumberOfFrames, (ds.Rows, ds.Columns) = n, spec.stored.shape[1:]
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [spec.spacing[1], spec.spacing[2]], spec.spacing[0]
    orientation = Dataset()
    orientation.ImageOrientationPatient = [*spec.row_cosine, *spec.column_cosine]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([measures]), Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    slopes = np.broadcast_to(np.asarray(spec.slope, dtype=float), (n,))
    intercepts = np.broadcast_to(np.asarray(spec.intercept, dtype=float), (n,))
    per_frame = []
    for source in order:
        group, position, transform, content = Dataset(), Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [round(float(v), 4) for v in spec.position(source)]
        transform.RescaleSlope, transform.RescaleIntercept = f"{slopes[source]:.6g}", f"{intercepts[source]:.6g}"
        content.InStackPositionNumber, content.StackID = source + 1, "1"
        group.PlanePositionSequence, group.PixelValueTransformationSequence = Sequence([position]), Sequence([transform])
        group.FrameContentSequence = Sequence([content])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _set_pixels(ds, spec.stored[order])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_enhanced_4d(path: str | os.PathLike, spec: SeriesSpec, seed: int = 0) -> Path:
    """An enhanced multi-frame file holding two volumes of ``spec``'s positions (the stack, then its slices reversed),
    told apart only by DimensionIndexValues (InversionTimes, read by no other key, then InStackPositionNumber)."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    n = spec.stored.shape[0]
    both = SeriesSpec(stored=np.concatenate([spec.stored, spec.stored[::-1]]), spacing=spec.spacing, seed=seed)
    path = write_enhanced_ct(path, both)
    ds = pydicom.dcmread(path)
    dimensions = []
    for pointer in (0x00189079, 0x00209057):
        item = Dataset()
        item.DimensionIndexPointer = pointer
        dimensions.append(item)
    ds.DimensionIndexSequence = Sequence(dimensions)
    for index, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        volume, slice_index = divmod(index, n)
        group.PlanePositionSequence[0].ImagePositionPatient = [round(float(v), 4) for v in spec.position(slice_index)]
        group.FrameContentSequence[0].InStackPositionNumber = slice_index + 1
        group.FrameContentSequence[0].DimensionIndexValues = [volume + 1, slice_index + 1]
    ds.save_as(path)
    return Path(path)


def write_radiograph(path: str | os.PathLike, stored: np.ndarray, *, pixel_spacing=(0.2, 0.2),
                     modality: str = "DX", photometric: str = "MONOCHROME2", slope: float = 1.0,
                     intercept: float = 0.0, bits_stored: int | None = None, patient_id: str = "SYNTH0001",
                     seed: int = 0, instance: int = 1, equipment: dict[str, str] | None = None) -> Path:
    """Write one projection radiograph (CR/DX) with ImagerPixelSpacing.

    ``equipment``: header fields such as Manufacturer, ManufacturerModelName, InstitutionName.
    """
    sop_class = DX_IMAGE_STORAGE if modality == "DX" else CR_IMAGE_STORAGE
    ds = _base_dataset(sop_class, uid("sop", patient_id, seed, instance), modality, patient_id,
                       "SYNTHETIC^PATIENT", seed)
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = uid("projection-series", patient_id, seed, instance), 1, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PhotometricInterpretation = photometric
    ds.ImagerPixelSpacing = list(pixel_spacing)
    ds.Rows, ds.Columns = stored.shape
    if slope != 1.0 or intercept != 0.0:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.6g}", f"{intercept:.6g}", "US"
    for keyword, value in (equipment or {}).items():
        setattr(ds, keyword, value)
    _set_pixels(ds, stored, bits_stored)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def phantom_volume(shape=(12, 32, 40), seed: int = 0) -> np.ndarray:
    """CT-like stored values (int16, HU + 1024): body ellipse, a denser blob, noise; slice-varying."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    body = (y / 0.85) ** 2 + (x / 0.9) ** 2 < 1
    lesion = (z - 0.2) ** 2 + (y + 0.3) ** 2 + (x - 0.2) ** 2 < 0.12
    hu = np.where(body, 40.0, -1000.0) + np.where(lesion, 80.0, 0.0) + 30.0 * z
    hu += rng.normal(0, 8, shape)
    return np.clip(hu + 1024, 0, 4095).astype(np.int16)
