"""Pixel decoding and value mapping for DICOM files.

Uncompressed little-endian pixel data is read straight from the probed offset;
everything else goes through pydicom's decoders (pylibjpeg/openjpeg/jpegls
plugins). Stored values become physical values per frame: sign/bit correction,
then RescaleSlope/Intercept (or the Modality LUT) into float32, then MONOCHROME1
inversion for projection radiographs only.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from ..errors import InputError
from .dicom_records import DicomFile, Frame
from .reasons import Reason


def _fix_bits(stored: np.ndarray, info: DicomFile) -> np.ndarray:
    """Sign-extend signed data and mask unused high bits when BitsStored < BitsAllocated."""
    unused = info.bits_allocated - info.bits_stored
    if unused <= 0:
        return stored
    if info.pixel_representation == 1:
        return (stored << unused) >> unused
    return stored & np.array((1 << info.bits_stored) - 1, dtype=stored.dtype)


_J2K_SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                 "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
_SOC_SIZ = b"\xff\x4f\xff\x51"


def j2k_declared_size(fragment: bytes) -> tuple[int, int] | None:
    """``(rows, columns)`` a JPEG 2000 codestream declares in its SIZ marker (``None``: not found)."""
    start = fragment.find(_SOC_SIZ)
    if start < 0 or len(fragment) < start + 24:
        return None
    # SIZ: Lsiz(2) Rsiz(2) Xsiz(4) Ysiz(4) XOsiz(4) YOsiz(4), after SOC + SIZ markers
    x_size, y_size, x_offset, y_offset = np.frombuffer(fragment[start + 8:start + 24], dtype=">u4")
    return int(y_size) - int(y_offset), int(x_size) - int(x_offset)


def _check_codestream_size(ds, info: DicomFile) -> None:
    """A codestream declaring another size than the header would make the decoder allocate that size."""
    if info.transfer_syntax not in _J2K_SYNTAXES:
        return
    from pydicom.encaps import generate_frames

    for fragment in generate_frames(ds.PixelData, number_of_frames=info.n_frames):
        declared = j2k_declared_size(fragment)
        if declared is not None and declared != (info.rows, info.columns):
            raise InputError(f"JPEG 2000 data of {info.path} declares {declared[0]}x{declared[1]} pixels but the "
                             f"header says {info.rows}x{info.columns}; refusing to decode it",
                             Reason.DECODE_FAILED.name)


def _unpacked(stored: np.ndarray, info: DicomFile) -> np.ndarray:
    """A mosaic's tiled frame as its slices; any other file as it is."""
    if info.mosaic is None:
        return stored
    from .dicom_mosaic import unpack

    return unpack(stored, info.mosaic)


def read_stored_frames(info: DicomFile) -> np.ndarray:
    """All frames of a file as stored integers, shape ``(frames, rows, columns)``.

    JPEG 2000 codestreams are checked against the header's size before decoding.
    """
    shape = (info.n_frames, info.rows, info.columns)
    dtype = info.native_dtype
    try:
        if dtype is not None:
            count = info.n_frames * info.rows * info.columns
            stored = np.fromfile(info.path, dtype=dtype, count=count, offset=info.pixel_offset)
            return _unpacked(_fix_bits(stored.reshape(shape), info).astype(dtype.newbyteorder("="), copy=False),
                             info)
        import pydicom

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(info.path)
            _check_codestream_size(ds, info)
            return _unpacked(np.asarray(ds.pixel_array).reshape(shape), info)
    except InputError:
        raise
    # Codecs raise their own exception types; any of them means this file cannot be decoded.
    except Exception as exc:  # noqa: BLE001
        raise InputError(
            f"cannot decode pixel data of {info.path}: {type(exc).__name__}; the file is corrupt or "
            "its codec is not supported", Reason.DECODE_FAILED.name) from exc


def pixel_digest(info: DicomFile) -> str:
    """Hash of the stored pixel values (to tell exact duplicates from conflicts)."""
    return hashlib.sha256(read_stored_frames(info).tobytes()).hexdigest()


def _modality_lut(info: DicomFile, stored: np.ndarray) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(info.path, stop_before_pixels=True)
    return np.stack([apply_modality_lut(plane, ds) for plane in stored]).astype(np.float32)


def monochrome1_range(info: DicomFile, slope: float, intercept: float) -> tuple[float, float]:
    """Physical value range the stored bits can represent, after rescale."""
    if info.pixel_representation == 1:
        lo, hi = -(2 ** (info.bits_stored - 1)), 2 ** (info.bits_stored - 1) - 1
    else:
        lo, hi = 0, 2**info.bits_stored - 1
    ends = sorted((lo * slope + intercept, hi * slope + intercept))
    return ends[0], ends[1]


def physical_frames(frames: list[Frame], files: dict[str, DicomFile], mapping: list[str]) -> np.ndarray:
    """Physical float32 values for ``frames`` in the given order, reading each file once."""
    first = files[frames[0].path]
    out = np.empty((len(frames), *first.plane_shape), dtype=np.float32)
    by_path: dict[str, list[int]] = {}
    for position, frame in enumerate(frames):
        by_path.setdefault(frame.path, []).append(position)

    def fill(path: str) -> None:
        info = files[path]
        stored = read_stored_frames(info)
        if info.has_modality_lut_sequence:
            values = _modality_lut(info, stored)
            for position in by_path[path]:
                out[position] = values[frames[position].index]
            return
        for position in by_path[path]:
            frame = frames[position]
            np.multiply(stored[frame.index], np.float32(frame.slope), out=out[position], casting="unsafe")
            out[position] += np.float32(frame.intercept)

    if len(by_path) > 8:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(fill, by_path))
    else:
        for path in by_path:
            fill(path)

    if any(f.slope != 1.0 or f.intercept != 0.0 for f in frames):
        mapping.append("rescale")
    if first.has_modality_lut_sequence:
        mapping.append("modality_lut")
    if first.photometric == "MONOCHROME1" and first.projection:
        lo, hi = monochrome1_range(first, frames[0].slope, frames[0].intercept)
        np.subtract(np.float32(lo + hi), out, out=out)
        mapping.append("monochrome1_inverted")
    return out
