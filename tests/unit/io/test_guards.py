"""Guards: memory limit from headers, non-finite values, bad frame counts, conflicting copies, JPEG 2000 sizes."""

import numpy as np
import pydicom
import pytest

from medtl.errors import InputError
from medtl.io.dicom_header import read_dicom_header
from medtl.io.guards import check_finite, check_size, size_problem
from medtl.io.reasons import Reason
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series


def test_size_limit_counts_float32_copies_and_is_configurable(monkeypatch):
    monkeypatch.setenv("MEDTL_MAX_VOLUME_MB", "10")
    assert size_problem((50, 100, 100)) is None  # 0.5 M voxels x 4 bytes x 3 copies = 5.7 MB
    with pytest.raises(InputError) as error:
        check_size((200, 200, 100), "case x")
    assert error.value.reason == Reason.TOO_LARGE.name and "MEDTL_MAX_VOLUME_MB" in str(error.value)
    monkeypatch.setenv("MEDTL_MAX_VOLUME_MB", "lots")
    with pytest.raises(InputError, match="not a number"):
        size_problem((1,))


def test_non_finite_values_are_refused():
    check_finite(np.ones(4, np.float32), "ok")
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InputError) as error:
            check_finite(np.array([1.0, bad], np.float32), "case y")
        assert error.value.reason == Reason.NON_FINITE_VALUES.name


@pytest.fixture
def one_file(tmp_path):
    return write_series(tmp_path / "s", SeriesSpec(stored=phantom_volume((3, 8, 8))))[0]


@pytest.mark.parametrize("edit, reason", [
    (lambda ds: setattr(ds, "RescaleSlope", "NaN"), "NON_FINITE_VALUES"),
    (lambda ds: setattr(ds, "RescaleSlope", "inf"), "NON_FINITE_VALUES"),
    (lambda ds: setattr(ds, "RescaleSlope", "0"), "NON_FINITE_VALUES"),
    (lambda ds: setattr(ds, "RescaleIntercept", "-inf"), "NON_FINITE_VALUES"),
    (lambda ds: setattr(ds, "NumberOfFrames", 0), "BAD_VALUE"),
    (lambda ds: setattr(ds, "NumberOfFrames", -2), "BAD_VALUE"),
    (lambda ds: setattr(ds, "NumberOfFrames", 5_000_000), "TOO_LARGE"),
])
def test_bad_headers_become_reason_codes(one_file, edit, reason):
    ds = pydicom.dcmread(one_file)
    edit(ds)
    ds.save_as(one_file)
    info = read_dicom_header(one_file)
    assert info.skip is not None and info.skip.reason.name == reason


def test_missing_and_unreadable_files_become_reason_codes(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    assert read_dicom_header(tmp_path / "dangling").skip.reason is Reason.BROKEN_LINK
    assert read_dicom_header(tmp_path / "gone").skip.reason is Reason.FILE_VANISHED


def test_same_sop_uid_with_other_pixels_is_a_conflict_not_a_dropped_copy(tmp_path):
    from medtl.io.scan import scan_export

    paths = write_series(tmp_path / "export", SeriesSpec(stored=phantom_volume((4, 8, 8))))
    twin = tmp_path / "export" / "twin.dcm"
    ds = pydicom.dcmread(paths[0])
    ds.PixelData = (ds.pixel_array + 1).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(twin)
    result = scan_export(tmp_path / "export", progress=False)
    reasons = sorted(r["reason"] for r in result.skipped_rows)
    assert reasons == ["SOP_INSTANCE_CONFLICT", "SOP_INSTANCE_CONFLICT"]
    ds.PixelData = pydicom.dcmread(paths[0]).PixelData  # an exact copy is only dropped
    ds.save_as(twin)
    assert [r["reason"] for r in scan_export(tmp_path / "export", progress=False).skipped_rows] == [
        "DUPLICATE_DROPPED"]


def test_a_jpeg2000_codestream_larger_than_its_header_is_not_decoded(tmp_path):
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate, generate_frames

    from medtl.io.dicom_pixels import j2k_declared_size, read_stored_frames

    ds = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))
    fragment = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    start = bytes(fragment).find(b"\xff\x4f\xff\x51")
    fragment[start + 8:start + 16] = np.array([16384, 16384], ">u4").tobytes()  # Xsiz, Ysiz
    assert j2k_declared_size(bytes(fragment)) == (16384, 16384)
    ds.PixelData = encapsulate([bytes(fragment)])
    ds.save_as(tmp_path / "bomb.dcm")
    info = read_dicom_header(tmp_path / "bomb.dcm", include_derived=True)
    assert info.skip is None  # the header alone is fine ...
    with pytest.raises(InputError) as error:  # ... the decoder is never asked for 16384 x 16384
        read_stored_frames(info)
    assert error.value.reason == Reason.DECODE_FAILED.name and "16384x16384" in str(error.value)
