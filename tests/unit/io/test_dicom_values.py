"""The scan's fast header values equal pydicom's own conversion, file by file and value by value.

``HeaderValues`` reads plain raw elements itself; the invariant is that every indexed file
(``DicomFile``: frames, keys, findings, skip reason) is the one the pydicom conversion gives,
for every file of the corpora below and for fuzzed values of every tag it reads.
"""

import os
import warnings
from functools import partial
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from medtl.io import dicom_header
from medtl.io.dicom_header import read_dicom_header
from medtl.io.dicom_records import DicomFile
from medtl.io.dicom_values import HEADER_KEYWORDS, HEADER_TAGS, HeaderValues
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

PYDICOM_FILES = Path(os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm")))
NIBABEL_FILES = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"


def reference_index(path: str) -> DicomFile:
    """The file indexed with every value converted by pydicom (the behaviour before the fast path)."""
    original = dicom_header.HeaderValues
    dicom_header.HeaderValues = partial(HeaderValues, plain=False)
    try:
        return read_dicom_header(path)
    finally:
        dicom_header.HeaderValues = original


def corpus_files(tmp_path: Path) -> list[Path]:
    series = tmp_path / "series"
    write_series(series, SeriesSpec(stored=phantom_volume((4, 8, 8)), modality="MR", intercept=0.0))
    files = sorted(p for folder in (PYDICOM_FILES, NIBABEL_FILES, series) for p in folder.rglob("*") if p.is_file())
    assert len(files) > 150
    return files


def test_every_corpus_file_is_indexed_as_pydicom_converts_it(tmp_path):
    files = corpus_files(tmp_path)
    usable = 0
    for path in files:
        fast, reference = read_dicom_header(path), reference_index(path)
        assert fast == reference, path.name
        usable += fast.skip is None
    assert usable > 20  # the corpus exercises the whole classification, not only refusals


FUZZ_ALPHABET = list("0123456789") + [".", "-", "+", " ", "\\", "e", "E", "A", "Z", "_", "\0", "a", "\xe9"]
TEXT_VRS = {"IS", "DS", "CS", "UI", "LO", "SH"}


def fuzzed_bytes(rng: np.random.Generator) -> bytes:
    """A short value made of characters that sit on the edges of each VR's plain form."""
    length = int(rng.integers(1, 12))
    text = "".join(rng.choice(FUZZ_ALPHABET, length))
    if rng.random() < 0.4:  # mostly canonical numbers too, so the fast path is taken as well as refused
        text = str(rng.choice(["1", "0", "-3", "12.50", "007", "2\\3", "1.5\\0.5", "ORIGINAL\\PRIMARY\\AXIAL",
                               "MONOCHROME2", "1.2.840.10008.5.1.4.1.1.2", "CT", "YES", "01"]))
    return text.encode("latin-1")


def classify_with(path: Path, replacements: dict, plain: bool) -> DicomFile:
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=HEADER_TAGS)
        for tag, element in replacements.items():
            ds[tag] = element  # a raw element: converted on first access, as if read from the file
        info = DicomFile(path=str(path), size=os.path.getsize(path))
        try:
            return dicom_header._classify(info, HeaderValues(ds, plain=plain), f, False)
        except Exception as exc:  # noqa: BLE001 - read_dicom_header maps any parser error to HEADER_UNREADABLE
            return info.skipped(dicom_header.Reason.HEADER_UNREADABLE, type(exc).__name__)


@pytest.mark.parametrize("seed", range(6))
def test_fuzzed_values_give_the_same_index_either_way(tmp_path, seed):
    series = tmp_path / "series"
    path = write_series(series, SeriesSpec(stored=phantom_volume((2, 8, 8)), modality="CT"))[0]
    rng = np.random.default_rng(seed)
    keywords = [k for k in HEADER_KEYWORDS if pydicom.datadict.dictionary_VR(k) in TEXT_VRS]
    for _ in range(60):
        chosen = rng.choice(keywords, size=int(rng.integers(1, 5)), replace=False)
        replacements = {}
        for keyword in chosen:
            tag = Tag(pydicom.datadict.tag_for_keyword(keyword))
            value = fuzzed_bytes(rng)
            vr = pydicom.datadict.dictionary_VR(tag)
            replacements[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
        assert classify_with(path, replacements, True) == classify_with(path, replacements, False), replacements


def test_binary_values_and_odd_lengths_fall_back(tmp_path):
    path = write_series(tmp_path / "s", SeriesSpec(stored=phantom_volume((2, 8, 8))))[0]
    rows = Tag("Rows")
    for value in (b"\x08\x00", b"\x08\x00\x09\x00", b"\x08", b"\xff\xff"):
        replacements = {rows: RawDataElement(rows, "US", len(value), value, 0, False, True)}
        assert classify_with(path, replacements, True) == classify_with(path, replacements, False), value


def test_a_mosaic_is_read_in_full_from_the_open_file():
    """The CSA headers a mosaic needs are not among the parsed tags: its header is read again, whole."""
    import gzip
    import shutil
    import tempfile

    source = NIBABEL_FILES / "siemens_dwi_1000.dcm.gz"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mosaic.dcm"
        with gzip.open(source) as packed, open(path, "wb") as out:
            shutil.copyfileobj(packed, out)
        info = read_dicom_header(path)
        assert info.skip is None and info.mosaic is not None and len(info.frames) == info.mosaic.slices > 1
        assert info == reference_index(str(path))
