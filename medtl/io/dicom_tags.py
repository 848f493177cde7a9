"""Tolerant readers for DICOM tag values and SOP class / transfer syntax facts.

Hospital headers hold invalid values; these helpers turn them into ``None`` and a
recorded ``INVALID_VALUE`` (non-geometry) or raise ``ValueError`` (geometry, which
the caller maps to ``BAD_VALUE``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from .reasons import Finding, Reason

DICOMDIR_SOP = "1.2.840.10008.1.3.10"
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
# Storage classes that carry no image meant for a scalar pipeline (SEG and RT dose
# have pixel data but are labels/doses, routed elsewhere).
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, spatial registration, SEG, fiducials
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT dose
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT structure set
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT plan
    "1.2.840.10008.5.1.4.1.1.481.8",  # RT ion plan
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, KOS
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
)
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "XA", "IO", "PX", "RG"})
CROSS_SECTIONAL_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})
SCALAR_PHOTOMETRIC = frozenset({"MONOCHROME1", "MONOCHROME2"})
LOSSY_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
    "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
})


def sop_class_name(uid: str) -> str:
    """Readable SOP class name (public dictionary text, never PHI)."""
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name and name != uid else uid


def is_non_image_sop(sop_class: str) -> bool:
    return any(sop_class.startswith(p) or sop_class == p.rstrip(".") for p in NON_IMAGE_SOP_PREFIXES)


@lru_cache(maxsize=64)
def decoder_problem(transfer_syntax: str) -> str | None:
    """``None`` when pixels in this syntax can be decoded here, else what to install."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    if not uid.is_compressed:
        return None
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return f"no pydicom decoder exists for {uid.name or uid}"
    if decoder.is_available:
        return None
    missing = "; ".join(decoder.missing_dependencies) or "a plugin"
    return f"{uid.name}: install one of: {missing}"


def decoder_report() -> dict[str, str]:
    """Availability of decoders for the common compressed syntaxes (checked before a batch)."""
    from pydicom import uid

    syntaxes = [uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLosslessSV1, uid.JPEGLSLossless,
                uid.JPEG2000Lossless, uid.JPEG2000, uid.HTJ2KLossless, uid.RLELossless]
    return {str(s.name): (decoder_problem(str(s)) or "ok") for s in syntaxes}


def text(ds: Any, keyword: str) -> str | None:
    """A string tag, stripped; ``None`` when absent or empty."""
    value = ds.get(keyword)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def multi_text(ds: Any, keyword: str) -> tuple[str, ...]:
    value = ds.get(keyword)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip().upper() for v in value.split("\\"))
    return tuple(str(v).strip().upper() for v in value)


def number(ds: Any, keyword: str, findings: list[Finding], default: float | None = None) -> float | None:
    """A numeric non-geometry tag; invalid values become ``default`` plus ``INVALID_VALUE``."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        if not isinstance(value, (int, float, str)):
            value = value[0]
        number_value = float(value)
        if not math.isfinite(number_value):
            raise ValueError("not finite")
        return number_value
    except (TypeError, ValueError, IndexError):
        findings.append(Finding(Reason.INVALID_VALUE, keyword))
        return default


def geometry_floats(ds: Any, keyword: str, count: int) -> tuple[float, ...] | None:
    """A geometry tag as ``count`` floats, ``None`` when absent; ``ValueError`` when it does not parse."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        values = [value] if isinstance(value, (int, float, str)) else list(value)
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ValueError(keyword) from exc
    if len(floats) != count or not all(abs(f) < 1e7 for f in floats):
        raise ValueError(keyword)
    return floats
