"""The header tags the inventory reads, and a fast view of their values.

``medtl scan`` touches a few dozen tags per file; through ``Dataset.get(keyword)`` each
access costs a keyword lookup, tag construction and the dataset's bookkeeping, which
profiled at about two thirds of the time of indexing a file. ``HeaderValues`` reads the plain
cases straight from the raw element (one binary number, canonical ASCII numbers, plain
ASCII codes and UIDs) as values that every reader here treats exactly as pydicom's (the
same ``float``, ``int`` and ``str`` of them); anything else (text in another character
set, padding inside a value, an ``IS`` like ``+01``, ambiguous VRs, sequences, deferred
values) goes through pydicom's own conversion. Tested: the indexed file is equal either
way over the test corpora and fuzzed values.

``HEADER_TAGS`` is what ``dcmread(specific_tags=...)`` parses: everything the inventory,
the frame planner and the site key read. Siemens mosaics need their private CSA headers
(read by nibabel), so a mosaic's header is read again in full from the open file.
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

HEADER_KEYWORDS = (
    # identity, class and series
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "Modality", "PatientID", "DirectoryRecordSequence",
    "Manufacturer", "ManufacturerModelName", "InstitutionName",
    # pixel description
    "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
    "BitsStored", "PixelRepresentation", "PixelPaddingValue", "ModalityLUTSequence", "ImageType",
    "LossyImageCompression", "BurnedInAnnotation",
    # geometry and rescale of classic files
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ImagerPixelSpacing", "SliceThickness",
    "RescaleSlope", "RescaleIntercept", "InstanceNumber",
    # the keys that tell the volumes of a 4D series apart
    "EchoNumbers", "TemporalPositionIdentifier", "TriggerTime", "DiffusionBValue", "DiffusionGradientOrientation",
    "AcquisitionNumber",
    # enhanced multi-frame (whole sequences)
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "DimensionIndexSequence",
)
FILE_META_KEYWORDS = ("MediaStorageSOPClassUID", "TransferSyntaxUID")  # always parsed (group 0002)
# vendor diffusion tags of classic DTI (GE, Philips): see ``dicom_frames._VENDOR_DIFFUSION``
PRIVATE_TAGS = ((0x0043, 0x1039), (0x0019, 0x10BB), (0x0019, 0x10BC), (0x0019, 0x10BD),
                (0x2001, 0x1003), (0x2005, 0x10B0), (0x2005, 0x10B1), (0x2005, 0x10B2))
_TAG_OF = {keyword: Tag(tag_for_keyword(keyword)) for keyword in HEADER_KEYWORDS + FILE_META_KEYWORDS}
HEADER_TAGS = [*_TAG_OF.values(), *(Tag(tag) for tag in PRIVATE_TAGS)]
_NUMBER_OF = {keyword: int(tag) for keyword, tag in _TAG_OF.items()}  # plain ints: dict lookups stay in C
_MISSING = object()
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FD": "d", "FL": "f"}
_CANONICAL = {"IS": re.compile(r"0|-?[1-9][0-9]{0,8}"), "DS": re.compile(r"-?[0-9]{1,9}(\.[0-9]{1,9})?"),
              "UI": re.compile(r"[0-9][0-9.]{0,63}"), "CS": re.compile(r"[A-Z0-9_]{1,16}"),
              "LO": re.compile(r"[!-~]([ -~]{0,62}[!-~])?"), "SH": re.compile(r"[!-~]([ -~]{0,14}[!-~])?")}
_TEXT_VRS = frozenset(_CANONICAL)
# tags whose several values are only iterated as numbers or codes here (elsewhere ``str()`` of pydicom's MultiValue
# would differ from a list's)
_MULTI_PLAIN = frozenset({"ImageType", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                          "ImagerPixelSpacing", "DiffusionGradientOrientation"})


@lru_cache(maxsize=128)
def _dictionary_vr(tag: int) -> str:
    return dictionary_VR(tag)


@lru_cache(maxsize=128)
def _ambiguous(tag: int) -> bool:
    """The dictionary gives several VRs (``US or SS``): pydicom decides from other elements."""
    return " or " in dictionary_VR(tag)


def plain_value(raw: RawDataElement, multi: bool = False) -> Any:
    """The value of a plain raw element as the readers here use it, or ``_MISSING`` when it is not plain.

    Binary numbers: one value (``int``/``float``), or several for ``FD``/``FL`` (a list).
    Text: ``IS`` as ``int``; ``DS`` as its string (``float()`` of it is pydicom's, and ``str()`` keeps the
    digits as written, as pydicom's ``DSfloat`` does); codes, UIDs and ASCII names as ``str``, several values
    (backslash) as a list when ``multi``. Only values whose every character is in the VR's plain form qualify.
    """
    value, tag = raw.value, int(raw.tag)  # an int: the caches below compare it in C, a pydicom Tag in Python
    if not isinstance(value, bytes) or not value or _ambiguous(tag):
        return _MISSING
    vr = raw.VR or _dictionary_vr(tag)
    code = _BINARY.get(vr)
    if code is not None:
        size = struct.calcsize(code)
        count, extra = divmod(len(value), size)
        if extra or (count != 1 and not multi):
            return _MISSING
        numbers = list(struct.unpack(("<" if raw.is_little_endian else ">") + code * count, value))
        return numbers[0] if count == 1 else numbers
    if vr not in _TEXT_VRS or not value.isascii():
        return _MISSING
    text = value.decode("ascii")
    text = text[:-1] if text[-1] in ("\0", " ") else text  # the one padding byte of an odd-length value
    parts = text.split("\\")
    pattern = _CANONICAL[vr]
    if (len(parts) > 1 and not multi) or not all(pattern.fullmatch(part) for part in parts):
        return _MISSING
    if vr == "IS":
        parts = [int(part) for part in parts]
    return parts[0] if len(parts) == 1 else parts


class HeaderValues:
    """``get(keyword)`` and ``keyword in`` over one parsed top-level dataset (or its file meta), equal to the
    dataset's own answers.

    Anything else (``file_meta``, ``original_encoding``, a tag key) is the dataset's.
    """

    def __init__(self, dataset: Any, plain: bool = True):
        self.dataset = dataset
        self.plain = plain  # False: every value through pydicom's conversion (the reference the tests compare to)
        self._values: dict[str, Any] = {}
        # tag number -> element as parsed (raw until the dataset converts it)
        self._elements = {int(tag): element for tag, element in dataset.items()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dataset, name)

    def __contains__(self, keyword: object) -> bool:
        tag = _NUMBER_OF.get(keyword) if isinstance(keyword, str) else None
        return keyword in self.dataset if tag is None else tag in self._elements

    def __bool__(self) -> bool:
        return bool(self.dataset)

    def get(self, key: Any, default: Any = None) -> Any:
        """The element's value (``default`` when absent), converted as ``Dataset.get`` converts it."""
        tag = _NUMBER_OF.get(key) if isinstance(key, str) else None
        if tag is None or not self.plain:
            return self.dataset.get(key, default)
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = self._values[key] = self._convert(key, tag)
        return default if value is _MISSING else value

    def _convert(self, keyword: str, tag: Any) -> Any:
        element = self._elements.get(tag)
        if element is None:
            return _MISSING
        if isinstance(element, RawDataElement):
            value = plain_value(element, keyword in _MULTI_PLAIN)
            return self.dataset.get(keyword, _MISSING) if value is _MISSING else value
        return element.value
