"""Every file-level case of a hospital export ends in a usable file or a stable reason code."""

import gzip

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000MC, RLELossless

from medtl.io import load_volume
from medtl.io.dicom_header import read_dicom_header
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_radiograph, write_series


@pytest.fixture
def ct_file(tmp_path):
    return write_series(tmp_path / "ct", SeriesSpec(stored=phantom_volume((1, 16, 16))))[0]


def reason(path):
    info = read_dicom_header(path)
    return info.skip.reason.name if info.skip else None


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n", bytes(range(256)) * 20,
                                     b"\x89PNG\r\n\x1a\n" + b"\0" * 300])
def test_non_dicom_files_are_not_dicom(tmp_path, content):
    path = tmp_path / "file"
    path.write_bytes(content)
    assert reason(path) == "NOT_DICOM"


def test_gzip_wrapped_dicom(tmp_path, ct_file):
    path = tmp_path / "x.dcm.gz"
    path.write_bytes(gzip.compress(ct_file.read_bytes()))
    assert reason(path) == "GZIP_WRAPPED"


def test_acr_nema_without_preamble(tmp_path, ct_file):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(ct_file)
    del ds.file_meta
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)  # the bare data set: no preamble, no file meta
    path = tmp_path / "raw"
    path.write_bytes(buffer.getvalue())
    assert reason(path) == "NO_FILE_META"


def test_usable_file_has_pixel_offset_and_frames(ct_file):
    info = read_dicom_header(ct_file)
    assert info.skip is None and info.pixel_offset > 128 and len(info.frames) == 1


def test_missing_pixel_data(tmp_path, ct_file):
    ds = pydicom.dcmread(ct_file)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix")
    assert reason(tmp_path / "nopix") == "MISSING_PIXEL_DATA"


def test_truncated_native_pixel_data(tmp_path, ct_file):
    data = ct_file.read_bytes()
    (tmp_path / "cut").write_bytes(data[:-100])
    info = read_dicom_header(tmp_path / "cut")
    assert info.skip.reason.name == "TRUNCATED_PIXEL_DATA"
    assert "of 512 bytes" in info.skip.detail


def test_truncated_encapsulated_pixel_data(tmp_path, ct_file):
    ds = pydicom.dcmread(ct_file)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle")
    assert reason(tmp_path / "rle") is None
    np.testing.assert_array_equal(load_volume(tmp_path / "rle").array, load_volume(ct_file).array)
    (tmp_path / "rle_cut").write_bytes((tmp_path / "rle").read_bytes()[:-40])
    assert reason(tmp_path / "rle_cut") == "TRUNCATED_PIXEL_DATA"


def test_decoder_missing_names_the_problem(tmp_path, ct_file):
    ds = pydicom.dcmread(ct_file)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 40])
    ds.file_meta.TransferSyntaxUID = JPEG2000MC
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "j2kmc", enforce_file_format=True)
    info = read_dicom_header(tmp_path / "j2kmc")
    assert info.skip.reason.name == "DECODER_MISSING"
    assert "JPEG 2000" in info.skip.detail


def test_corrupt_codestream_is_decode_failed(tmp_path, ct_file):
    ds = pydicom.dcmread(ct_file)
    ds.compress(RLELossless)
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\0" * 60 + b"\x7f" * 10])
    ds.save_as(tmp_path / "bad_rle")
    with pytest.raises(Exception) as error:
        load_volume(tmp_path / "bad_rle")
    assert getattr(error.value, "reason", None) == "DECODE_FAILED"


@pytest.mark.parametrize("sop_class,expected", [
    ("1.2.840.10008.5.1.4.1.1.88.11", "NON_IMAGE_SOP"),  # basic text SR
    ("1.2.840.10008.5.1.4.1.1.481.3", "NON_IMAGE_SOP"),  # RTSTRUCT
    ("1.2.840.10008.5.1.4.1.1.104.1", "NON_IMAGE_SOP"),  # encapsulated PDF
    ("1.2.840.10008.5.1.4.1.1.7", "DERIVED_OR_SC"),  # secondary capture
])
def test_sop_classes(tmp_path, ct_file, sop_class, expected):
    ds = pydicom.dcmread(ct_file)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.save_as(tmp_path / "obj")
    assert reason(tmp_path / "obj") == expected


@pytest.mark.parametrize("edit,expected", [
    (lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"]), "LOCALIZER"),
    (lambda ds: setattr(ds, "ImageType", ["DERIVED", "SECONDARY", "MPR"]), "DERIVED_OR_SC"),
    (lambda ds: setattr(ds, "PhotometricInterpretation", "PALETTE COLOR"), "NON_SCALAR_IMAGE"),
    (lambda ds: setattr(ds, "Rows", 60000) or setattr(ds, "Columns", 60000)
     or setattr(ds, "NumberOfFrames", 5000), "TOO_LARGE"),
    # written with a text VR because pydicom refuses to write an invalid DS
    (lambda ds: ds.add_new(0x00200032, "LO", "a\\b\\c"), "BAD_VALUE"),
    (lambda ds: ds.add_new(0x00280030, "LO", "0\\0.5"), "BAD_VALUE"),
])
def test_header_cases(tmp_path, ct_file, edit, expected):
    ds = pydicom.dcmread(ct_file)
    edit(ds)
    ds.save_as(tmp_path / "obj")
    assert reason(tmp_path / "obj") == expected


def test_warnings_do_not_skip(tmp_path, ct_file):
    ds = pydicom.dcmread(ct_file)
    ds.BurnedInAnnotation, ds.LossyImageCompression = "YES", "01"
    ds.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]  # degenerate
    ds.save_as(tmp_path / "warn")
    info = read_dicom_header(tmp_path / "warn")
    assert info.skip is None
    assert {f.reason.name for f in info.findings} == {"BURNED_IN_ANNOTATION", "LOSSY_SOURCE", "BAD_ORIENTATION"}
    volume = load_volume(tmp_path / "warn")
    assert {"NO_GEOMETRY", "BAD_ORIENTATION"} <= set(volume.reason_codes)


def test_monochrome1_radiograph_is_inverted_after_rescale(tmp_path):
    stored = np.array([[0, 100], [1000, 4095]], dtype=np.uint16)
    write_radiograph(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", bits_stored=12,
                     slope=2.0, intercept=10.0, modality="CR")
    volume = load_volume(tmp_path / "m1.dcm")
    physical = stored * 2.0 + 10.0
    np.testing.assert_allclose(volume.array, (10.0 + 4095 * 2.0 + 10.0) - physical)
    assert volume.metadata["value_mapping"] == ["rescale", "monochrome1_inverted"]
    assert volume.ndim == 2 and volume.spacing == (0.2, 0.2)


def test_monochrome1_ct_keeps_physical_values(tmp_path):
    spec = SeriesSpec(stored=phantom_volume((3, 8, 8)))
    write_series(tmp_path, spec, edit=lambda ds, i: setattr(ds, "PhotometricInterpretation", "MONOCHROME1"))
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, spec.stored.astype(np.float32) - 1024)
