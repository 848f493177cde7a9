"""Series assembly and geometry against the truth the fixtures built, and against SimpleITK."""

import shutil
from collections import Counter

import numpy as np
import pytest
import SimpleITK as sitk

from medtl.errors import InputError
from medtl.io import load_volume, load_volumes
from medtl.samples.synthetic import SeriesSpec, phantom_volume, uid, write_enhanced_ct, write_series
from tests.conftest import expected_physical


def codes(volume):
    return set(volume.reason_codes)


def assert_geometry(volume, spec):
    normal = np.cross(spec.row_cosine, spec.column_cosine)
    np.testing.assert_allclose(volume.spacing, spec.spacing, atol=1e-4)
    np.testing.assert_allclose(volume.origin, spec.position(0), atol=1e-3)
    np.testing.assert_allclose(volume.direction[:, 0], normal, atol=1e-5)
    np.testing.assert_allclose(volume.direction[:, 1], spec.column_cosine, atol=1e-5)
    np.testing.assert_allclose(volume.direction[:, 2], spec.row_cosine, atol=1e-5)


@pytest.mark.parametrize("instance_numbers", ["ordered", "shuffled", "missing"])
def test_slice_order_comes_from_positions_not_numbers_or_names(tmp_path, ct_spec, instance_numbers):
    write_series(tmp_path, ct_spec, shuffle=True, instance_numbers=instance_numbers)
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, expected_physical(ct_spec))
    assert_geometry(volume, ct_spec)
    assert volume.array.dtype == np.float32
    assert codes(volume) == set()


def test_oblique_series_geometry_matches_truth_and_simpleitk(tmp_path, oblique_spec):
    write_series(tmp_path, oblique_spec)
    volume = load_volume(tmp_path)
    assert_geometry(volume, oblique_spec)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    np.testing.assert_allclose(volume.spacing, image.GetSpacing()[::-1], atol=1e-4)
    for index in [(0, 0, 0), (7, 19, 21), (3, 5, 17)]:
        ours = volume.affine @ np.array([*index, 1.0])
        theirs = image.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
        np.testing.assert_allclose(ours[:3], theirs, atol=1e-3)
        assert volume.array[index] == pytest.approx(image[[int(i) for i in index[::-1]]], abs=1e-3)


def test_per_slice_rescale_is_applied_into_float32(tmp_path):
    spec = SeriesSpec(stored=phantom_volume((5, 8, 8)), slope=[1.0, 0.5, 2.0, 1.5, 0.25],
                      intercept=[-1024, -1000.5, 0.0, -10.25, 3.0])
    write_series(tmp_path, spec)
    volume = load_volume(tmp_path)
    np.testing.assert_allclose(volume.array, expected_physical(spec), rtol=1e-6)
    assert "rescale" in volume.metadata["value_mapping"]


def test_signed_data_with_fewer_bits_stored_is_sign_extended(tmp_path):
    true = np.array([[-2048, -1, 0, 2047]] * 4, dtype=np.int16)
    garbage_high_bits = (true & 0x0FFF) | np.int16(0x5000)  # unused bits hold junk, as old scanners do
    spec = SeriesSpec(stored=np.stack([garbage_high_bits] * 3), slope=1.0, intercept=0.0)
    write_series(tmp_path, spec, bits_stored=12)
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array[1], true.astype(np.float32))


def test_missing_slice_is_reported_with_count(tmp_path, ct_spec):
    paths = write_series(tmp_path, ct_spec, shuffle=False)
    paths[4].unlink()
    paths[5].unlink()
    volume = load_volume(tmp_path)
    assert "MISSING_SLICES(2 missing)" in volume.metadata["reasons"]
    assert volume.spacing[0] == pytest.approx(2.5)


def test_irregular_spacing_is_reported(tmp_path, ct_spec):
    def shift(ds, index):
        if index == 6:
            ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                                       float(ds.ImagePositionPatient[2]) + 0.6]
    write_series(tmp_path, ct_spec, edit=shift)
    assert "IRREGULAR_SPACING" in codes(load_volume(tmp_path))


def test_gantry_tilt_is_reported_with_angle_and_true_slice_axis(tmp_path):
    tilt = np.radians(15)
    spec = SeriesSpec(stored=phantom_volume((6, 16, 16)), spacing=(2.0, 0.5, 0.5),
                      slice_offset=(0.0, 2.0 * np.tan(tilt), 0.0))
    write_series(tmp_path, spec)
    volume = load_volume(tmp_path)
    assert "GANTRY_TILT(15.00 deg)" in volume.metadata["reasons"]
    # voxel centres are where the files say they are, even though the stack is sheared
    last = volume.affine @ np.array([5, 0, 0, 1.0])
    np.testing.assert_allclose(last[:3], spec.position(5), atol=1e-3)


def test_position_rounding_noise_is_not_tilt(tmp_path):
    spec = SeriesSpec(stored=phantom_volume((3, 8, 8)), spacing=(3.0, 1.0, 1.0))
    noise = [(0.0, 0.0), (0.008, -0.005), (-0.004, 0.009)]

    def jitter(ds, index):
        x, y, z = map(float, ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x + noise[index][0], y + noise[index][1], z]
    write_series(tmp_path, spec, edit=jitter)
    assert "GANTRY_TILT" not in codes(load_volume(tmp_path))


def test_two_series_in_one_folder_are_both_found_and_not_merged(tmp_path, ct_spec):
    other = SeriesSpec(stored=phantom_volume((4, 24, 28), seed=9), series_number=2, patient_id="P2")
    write_series(tmp_path, ct_spec)
    write_series(tmp_path, other)
    with pytest.raises(InputError, match="holds 2 volumes"):
        load_volume(tmp_path)


def test_one_series_spread_over_folders_is_one_volume(tmp_path, ct_spec):
    paths = write_series(tmp_path / "a", ct_spec)
    (tmp_path / "b").mkdir()
    for path in paths[::2]:
        shutil.move(path, tmp_path / "b" / path.name)
    volume = load_volume(tmp_path)
    assert volume.array.shape == ct_spec.stored.shape


def test_exact_duplicate_file_is_dropped(tmp_path, ct_spec):
    paths = write_series(tmp_path, ct_spec)
    shutil.copy(paths[3], tmp_path / "copy_of_slice")
    volume = load_volume(tmp_path)
    assert volume.array.shape[0] == 10


def test_same_position_with_different_pixels_is_a_conflict(tmp_path, ct_spec):
    write_series(tmp_path, ct_spec)

    def collide(ds, index):
        ds.ImagePositionPatient = list(map(float, ct_spec.position(2)))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7"
    impostor = SeriesSpec(stored=ct_spec.stored[:1] + 50, spacing=ct_spec.spacing, patient_id=ct_spec.patient_id)
    write_series(tmp_path / "x", impostor, edit=collide)
    with pytest.raises(InputError) as error:
        load_volume(tmp_path)
    assert error.value.reason == "DUPLICATE_POSITION_CONFLICT"


def test_copies_at_one_position_that_cannot_be_decoded_are_a_conflict_not_a_drop(tmp_path, ct_spec, monkeypatch):
    """Issue 28.1: two undecodable images at one position were taken as identical and one was dropped silently."""
    import pydicom

    from medtl.io import dicom_series
    from medtl.io.scan import scan_export

    paths = write_series(tmp_path, ct_spec)
    copy = pydicom.dcmread(paths[3])
    copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.8"
    copy.save_as(tmp_path / "second_copy")

    def no_decoder(info):
        raise InputError("no decoder for this transfer syntax", "DECODER_MISSING")

    monkeypatch.setattr(dicom_series, "pixel_digest", no_decoder)
    result = scan_export(tmp_path, progress=False)
    assert not result.series_rows
    assert Counter(r["reason"] for r in result.skipped_rows) == {"DUPLICATE_POSITION_CONFLICT": 11}


def test_multi_echo_series_is_split_by_echo(tmp_path, ct_spec):
    for echo in (1, 2):
        write_series(tmp_path, ct_spec, edit=lambda ds, i, e=echo: (
            setattr(ds, "EchoNumbers", e), setattr(ds, "SOPInstanceUID", uid("echo", e, i))))
    from medtl.io.dicom import index_dicom_files
    from medtl.io.dicom_series import assemble_series

    plans = assemble_series(index_dicom_files([str(p) for p in tmp_path.iterdir()])).plans
    assert len(plans) == 2
    assert all(p.shape == ct_spec.stored.shape for p in plans)
    assert all("SERIES_SPLIT" in {f.reason.name for f in p.findings} for p in plans)


def test_orientation_mix_in_one_series_is_split(tmp_path, ct_spec, oblique_spec):
    write_series(tmp_path / "axial", ct_spec)
    oblique_spec.patient_id, oblique_spec.seed = ct_spec.patient_id, ct_spec.seed  # same series UID
    write_series(tmp_path / "oblique", oblique_spec,
                 edit=lambda ds, i: setattr(ds, "SOPInstanceUID", uid("oblique", i)))
    from medtl.io.dicom import index_dicom_files
    from medtl.io.dicom_series import assemble_series

    files = [str(p) for p in tmp_path.rglob("*") if p.is_file()]
    plans = assemble_series(index_dicom_files(files)).plans
    assert sorted(p.shape for p in plans) == sorted([ct_spec.stored.shape, oblique_spec.stored.shape])


def test_enhanced_multiframe_uses_per_frame_geometry_and_rescale(tmp_path, oblique_spec):
    oblique_spec.slope = [1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0, 1.0]
    oblique_spec.intercept = -1000.0
    path = write_enhanced_ct(tmp_path / "mf.dcm", oblique_spec, frame_order=[3, 1, 0, 7, 2, 6, 5, 4])
    volume = load_volume(path)
    assert_geometry(volume, oblique_spec)
    np.testing.assert_allclose(volume.array, expected_physical(oblique_spec), rtol=1e-6)
    assert volume.metadata["kind"] == "3d"


def test_a_dicom_file_named_img_is_read_by_content(tmp_path, ct_spec):
    from medtl.io.scan import scan_export

    paths = write_series(tmp_path / "export", ct_spec)
    for path in paths:
        path.rename(path.with_suffix(".img"))
    result = scan_export(tmp_path / "export", progress=False)
    assert len(result.series_rows) == 1 and result.series_rows[0]["n_files"] == len(paths)
    assert load_volume(tmp_path / "export").array.shape == ct_spec.stored.shape


def test_classic_and_enhanced_copies_of_one_series_both_load(tmp_path, ct_spec):
    import pydicom

    from medtl.io.scan import scan_export

    classic = write_series(tmp_path / "export" / "classic", ct_spec)
    enhanced = write_enhanced_ct(tmp_path / "export" / "enhanced.dcm", ct_spec)
    ds = pydicom.dcmread(enhanced)
    ds.SeriesInstanceUID = pydicom.dcmread(classic[0]).SeriesInstanceUID  # a vendor export holding both encodings
    ds.save_as(enhanced)
    result = scan_export(tmp_path / "export", progress=False)
    assert sorted(r["n_files"] for r in result.series_rows) == [1, len(classic)] and not result.skipped_rows
    assert all(r["shape"] == "x".join(map(str, ct_spec.stored.shape)) for r in result.series_rows)
    assert all("ENCODING_COPY" in r["reasons"] for r in result.series_rows)


def test_classic_dti_splits_by_b_value_and_gradient_direction(tmp_path):
    import pydicom

    from medtl.io.scan import scan_export

    volumes = [(0, (0.0, 0.0, 0.0)), (1000, (1.0, 0.0, 0.0)), (1000, (0.0, 1.0, 0.0))]
    for k, (b_value, direction) in enumerate(volumes):
        spec = SeriesSpec(stored=phantom_volume((6, 12, 12), seed=10 + k), seed=5)

        def edit(ds, index, k=k, b_value=b_value, direction=direction):
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.add_new(0x00189087, "FD", float(b_value))  # DiffusionBValue
            ds.add_new(0x00189089, "FD", list(direction))  # DiffusionGradientOrientation
            ds.InstanceNumber = k * 6 + index + 1

        write_series(tmp_path / "dti", spec, edit=edit)
    result = scan_export(tmp_path / "dti", progress=False)
    assert not result.skipped_rows and len(result.series_rows) == 3
    assert all(r["shape"] == "6x12x12" and "SERIES_SPLIT" in r["reasons"] for r in result.series_rows)
    import medtl

    loaded = medtl.load_volumes(tmp_path / "dti")  # the Python API returns every volume ...
    assert sorted(loaded) == sorted(r["series_key"] for r in result.series_rows)
    assert all(v.array.shape == (6, 12, 12) for v in loaded.values())
    with pytest.raises(InputError, match="holds 3 volumes") as error:  # ... load_volume says how to pick one
        load_volume(tmp_path / "dti")
    assert "series_key" in str(error.value)


def test_fmri_with_only_instance_numbers_splits_by_their_cycle(tmp_path):
    import pydicom

    from medtl.io.scan import scan_export

    for volume in range(3):
        spec = SeriesSpec(stored=phantom_volume((5, 10, 10), seed=30 + volume), seed=9)

        def edit(ds, index, volume=volume):
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.InstanceNumber = volume * 5 + index + 1  # no temporal key: the cycle is all there is
            for keyword in ("TemporalPositionIdentifier", "AcquisitionNumber", "TriggerTime"):
                if keyword in ds:
                    delattr(ds, keyword)

        write_series(tmp_path / "fmri", spec, edit=edit)
    result = scan_export(tmp_path / "fmri", progress=False)
    assert not result.skipped_rows and len(result.series_rows) == 3
    assert sorted(r["reasons"] for r in result.series_rows) == [
        f"SERIES_SPLIT(part {i} of 3: volume={i})" for i in (1, 2, 3)]
    volumes = sorted(load_volumes(tmp_path / "fmri").values(), key=lambda v: float(v.array.mean()))
    expected = sorted((expected_physical(SeriesSpec(stored=phantom_volume((5, 10, 10), seed=30 + k), seed=9))
                       for k in range(3)), key=lambda a: float(a.mean()))
    assert all(np.allclose(v.array, e) for v, e in zip(volumes, expected))


@pytest.mark.parametrize("positions", [[0.0, 2.5, 5.0, 8.0, 10.5, 13.0, 15.5],  # one long step (irregular)
                                       [0.0, 2.0, 4.0, 8.0, 10.0, 14.0],  # two gaps (missing slices)
                                       [0.0, 2.4, 5.1, 7.4, 10.1, 12.6]])  # jittered steps
def test_a_stack_with_gaps_or_unequal_steps_puts_every_voxel_where_the_header_says(tmp_path, positions):
    import pydicom

    spec = SeriesSpec(stored=np.zeros((len(positions), 8, 8), np.int16), spacing=(2.5, 1.0, 1.0), intercept=0.0)

    def edit(ds, index):  # each slice's value is 100 + 10 * its true z (mm): linear, so interpolation is exact
        ds.ImagePositionPatient = [0.0, 0.0, positions[index]]
        ds.PixelData = np.full((8, 8), 100 + 10 * positions[index], np.int16).tobytes()

    write_series(tmp_path / "s", spec, edit=edit)
    volume = load_volume(tmp_path / "s")
    assert "RESAMPLED_SLICES" in volume.reason_codes
    step = volume.spacing[0]
    for k in range(volume.array.shape[0]):
        z = (np.asarray(volume.origin) + volume.direction @ (np.asarray(volume.spacing) * np.array([k, 0, 0])))[2]
        assert z == pytest.approx(k * step, abs=1e-3)
        assert volume.array[k, 3, 3] == pytest.approx(100 + 10 * z, abs=1e-3)  # the value acquired at that z
    assert volume.array.shape[0] == round(positions[-1] / step) + 1
    assert pydicom  # the series really is DICOM on disk


def test_an_enhanced_4d_file_splits_by_its_dimension_index_values(tmp_path, ct_spec):
    from medtl.samples.synthetic import write_enhanced_4d

    path = write_enhanced_4d(tmp_path / "mf" / "4d.dcm", SeriesSpec(stored=ct_spec.stored, spacing=ct_spec.spacing))
    volumes = load_volumes(path)
    assert len(volumes) == 2 and all(v.array.shape == ct_spec.stored.shape for v in volumes.values())
    expected = expected_physical(ct_spec)  # volume 1: the stack as written; volume 2: its slices reversed
    arrays = list(volumes.values())
    assert any(np.allclose(a.array, expected) for a in arrays)
    assert any(np.allclose(a.array, expected[::-1]) for a in arrays)


@pytest.mark.parametrize("vendor", ["GE", "Philips"])
def test_classic_dti_with_only_vendor_private_tags_splits_too(tmp_path, vendor):
    import pydicom

    from medtl.io.scan import scan_export

    for k, (b_value, direction) in enumerate([(0, (0.0, 0.0, 0.0)), (1000, (1.0, 0.0, 0.0)), (1000, (0.0, 1.0, 0.0))]):
        spec = SeriesSpec(stored=phantom_volume((5, 10, 10), seed=40 + k), seed=6)

        def edit(ds, index, k=k, b_value=b_value, direction=direction):
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.InstanceNumber = k * 5 + index + 1
            if vendor == "GE":
                ds.add_new(0x00431039, "IS", [int(b_value + 1e9), 8, 0, 0])
                for tag, g in zip((0x001910BB, 0x001910BC, 0x001910BD), direction):
                    ds.add_new(tag, "DS", g)
            else:
                ds.add_new(0x20011003, "FL", float(b_value))
                for tag, g in zip((0x200510B0, 0x200510B1, 0x200510B2), direction):
                    ds.add_new(tag, "FL", g)

        write_series(tmp_path / "dti", spec, edit=edit)
    result = scan_export(tmp_path / "dti", progress=False)
    assert not result.skipped_rows and len(result.series_rows) == 3
    assert all("diffusion=b" in r["reasons"] for r in result.series_rows)


def test_every_reason_coded_load_error_carries_its_reason(tmp_path):
    """Issue 28.20: InputError.reason was unset for some reason-coded errors (callers matched on messages)."""
    from medtl.io import load_volumes

    with pytest.raises(InputError) as missing:
        load_volume(tmp_path / "nowhere.dcm")
    assert missing.value.reason == "FILE_NOT_FOUND"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not an image")
    with pytest.raises(InputError) as nothing:
        load_volumes(tmp_path / "notes")
    assert nothing.value.reason == "NOT_DICOM"
    with pytest.raises(InputError) as folder:
        load_volume(tmp_path / "notes")
    assert folder.value.reason == "NOT_DICOM"
