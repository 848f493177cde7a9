"""NIfTI (.nii, .nii.gz, .hdr/.img) into a ``Volume``.

nibabel's rule picks the affine (sform when its code is set, else qform); medtl
records why. The RAS ``(i, j, k)`` array becomes LPS ``(k, j, i)`` here, once.
Data are read at load so truncation is found now, not mid-training.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError
from .guards import check_finite, check_size
from .reasons import Finding, Reason
from .volume import Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nifti_path(path: str | os.PathLike) -> bool:
    """A NIfTI/Analyze name, unless the file's content says DICOM (PACS exports name DICOM files ``*.img``)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES) and not looks_like_dicom(path)


def looks_like_dicom(path: str | os.PathLike) -> bool:
    """Whether the file starts like DICOM: the ``DICM`` preamble, or a raw dataset's first group tag."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    if len(head) >= 8 and not str(path).lower().endswith((".nii", ".nii.gz", ".hdr")):
        group, element = int.from_bytes(head[:2], "little"), int.from_bytes(head[2:4], "little")
        return group == 0x0008 and element < 0x0200 and head[4:6] in (b"CS", b"UI", b"DA", b"SH", b"LO", b"UL")
    return False


def _affine_findings(image) -> list[Finding]:
    findings = []
    if not hasattr(image, "get_qform"):  # Analyze 7.5: no orientation fields at all
        return [Finding(Reason.NO_SPATIAL_TRANSFORM, "Analyze header")]
    qform, qcode = image.get_qform(coded=True)
    sform, scode = image.get_sform(coded=True)
    if not qcode and not scode:
        findings.append(Finding(Reason.NO_SPATIAL_TRANSFORM))
    elif qcode and scode and not np.allclose(qform, sform, atol=1e-3):
        findings.append(Finding(Reason.QFORM_SFORM_MISMATCH, f"max difference {np.abs(qform - sform).max():.3g}"))
    axes = image.affine[:3, :3] / np.linalg.norm(image.affine[:3, :3], axis=0)
    off_diagonal = np.abs(axes.T @ axes - np.eye(3)).max()
    if off_diagonal > 1e-3:
        findings.append(Finding(Reason.SHEARED_AFFINE, f"max axis cosine {off_diagonal:.3g}"))
    return findings


def _check_header(image, path: Path) -> None:
    """Refuse, from the header alone, images that are empty, complex or too large to decode."""
    shape = tuple(int(d) for d in image.header.get_data_shape())
    if not shape or 0 in shape:
        raise InputError(f"{path} has shape {shape}: no voxels", Reason.EMPTY_IMAGE.name)
    if np.dtype(image.get_data_dtype()).kind == "c":
        raise InputError(f"{path} holds complex values ({image.get_data_dtype()}); export magnitude images",
                         Reason.NON_SCALAR_IMAGE.name)
    check_size(shape, str(path))


def _raw_pixdim(image) -> np.ndarray | None:
    """The voxel sizes as stored: nibabel's loader silently turns a zero ``pixdim`` into 1 mm."""
    from nibabel.openers import ImageOpener

    try:
        holder = image.file_map.get("header") or image.file_map["image"]
        with ImageOpener(holder.filename) as f:
            raw = type(image.header).from_fileobj(f, check=False)
        return np.asarray(raw["pixdim"][1:4], dtype=float)
    except Exception:  # noqa: BLE001 - Analyze/MINC variants: nibabel's own header is all there is
        return None


def _check_geometry(lps: np.ndarray, spacing: np.ndarray, shape: tuple, path: Path, image=None) -> None:
    """NaN or zero spacing/direction is refused, never replaced by an invented 1 mm."""
    flat = [d for d in shape[:3]] + [1] * (3 - len(shape[:3]))
    sizes = spacing
    if image is not None and int(image.header.get("sform_code", 0)) == 0:  # the affine comes from pixdim
        raw = _raw_pixdim(image)
        sizes = raw if raw is not None else spacing
    zero_on_real_axis = any((not np.isfinite(s)) or (s == 0 and n > 1) for s, n in zip(sizes, flat))
    if not np.isfinite(lps).all() or zero_on_real_axis:
        raise InputError(f"{path} has a NaN or zero voxel size / direction in its header (pixdim, quaternion or "
                         "sform); fix the header, medtl does not invent a geometry", Reason.NO_GEOMETRY.name)


def _read_data(image, path: Path, as_label: bool) -> np.ndarray:
    try:
        if as_label:
            data = np.asanyarray(image.dataobj)
        else:
            data = image.get_fdata(dtype=np.float32)
    except FileNotFoundError as exc:
        raise InputError(f"NIfTI data file missing for {path}: {exc.filename}; copy the .img beside the .hdr",
                         Reason.NIFTI_MISSING_DATA.name) from exc
    except (EOFError, OSError, ValueError, zlib.error) as exc:
        raise InputError(f"NIfTI file {path} is truncated or corrupt ({type(exc).__name__}); "
                         "re-export or re-copy it", Reason.NIFTI_TRUNCATED.name) from exc
    return np.asarray(data)


def load_nifti(path: str | os.PathLike, as_label: bool = False) -> Volume:
    """Read a NIfTI/Analyze image; ``as_label=True`` refuses non-integer values."""
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(str(path))
    except FileNotFoundError as exc:
        reason = Reason.NIFTI_MISSING_DATA if path.exists() else Reason.IMAGE_UNREADABLE
        raise InputError(f"cannot open NIfTI {path}: {exc.strerror}", reason.name) from exc
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for corrupt headers
        raise InputError(f"cannot read NIfTI header of {path}: {type(exc).__name__}: {exc}",
                         Reason.IMAGE_UNREADABLE.name) from exc
    if getattr(image, "affine", None) is None:
        raise InputError(f"{path} is a {type(image).__name__} without a spatial affine (e.g. CIFTI); "
                         "medtl needs volumetric images", Reason.IMAGE_UNREADABLE.name)
    _check_header(image, path)
    findings = _affine_findings(image)
    data = _read_data(image, path, as_label)
    if not as_label:
        check_finite(data, str(path))
    if as_label:
        if not np.issubdtype(data.dtype, np.integer):
            if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
                raise InputError(f"label {path} holds non-integer values (scaled or interpolated mask); "
                                 "export it as an integer label image", Reason.LABEL_NOT_INTEGER.name)
        data = data.astype(np.int16 if data.max(initial=0) < 32768 else np.int32)
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        raise InputError(f"{path} has shape {data.shape}: more than 3 non-singleton dimensions; "
                         "split it into 3D volumes", Reason.UNSUPPORTED_DIMENSIONS.name)
    while data.ndim < 3:
        data = data[..., None]
    lps = _RAS_TO_LPS @ image.affine
    columns = lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    _check_geometry(lps, spacing, data.shape, path, image)
    spacing[spacing == 0] = 1.0  # only on axes of size 1 (checked above), where no voxel position depends on it
    direction = (columns / spacing)[:, ::-1]
    metadata = {"source": "nifti", "kind": "3d", "shape": list(data.shape[::-1]), "value_mapping": [],
                "modality": "", "reasons": ";".join(str(f) for f in findings)}
    if not as_label and (image.dataobj.slope not in (1, None) or image.dataobj.inter not in (0, None)):
        metadata["value_mapping"].append("scl_slope/inter")
    return Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), tuple(float(s) for s in spacing[::-1]),
                  tuple(float(v) for v in lps[:3, 3]), direction.copy(), metadata, findings)


def write_nifti(path: str | os.PathLike, array: np.ndarray, spacing, origin, direction) -> Path:
    """Write an array in medtl's convention ((k, j, i), LPS) as NIfTI (RAS, (i, j, k)); inverse of ``load_nifti``."""
    import nibabel as nib

    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
        spacing = (1.0, *spacing)
    columns = np.asarray(direction, dtype=float) * np.asarray(spacing, dtype=float)[None, :]
    lps = np.eye(4)
    lps[:3, :3] = columns[:, ::-1]
    lps[:3, 3] = origin
    image = nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), _RAS_TO_LPS @ lps)
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path
