"""NIfTI and SimpleITK-format loading: RAS->LPS conversion, form codes, truncation, labels."""


import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medtl.errors import InputError
from medtl.io import load_volume


def rotated_affine():
    angle = 0.4
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 1.1, 2.5]) @ np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    affine[:3, 3] = [12.0, -40.0, 7.5]
    return affine


def save(tmp_path, data, affine, name="img.nii.gz", qform=1, sform=1, q_affine=None):
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=sform)
    image.set_qform(affine if q_affine is None else q_affine, code=qform)
    path = tmp_path / name
    nib.save(image, path)
    return path


def test_orientation_matches_simpleitk_world_coordinates(tmp_path):
    data = np.random.default_rng(0).normal(size=(7, 9, 5)).astype(np.float32)
    path = save(tmp_path, data, rotated_affine())
    volume = load_volume(path)
    image = sitk.ReadImage(str(path))
    assert volume.array.shape == sitk.GetArrayFromImage(image).shape
    np.testing.assert_allclose(volume.array, sitk.GetArrayFromImage(image))
    for index in [(0, 0, 0), (4, 8, 6), (2, 3, 1)]:
        ours = volume.affine @ np.array([*index, 1.0])
        theirs = image.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
        np.testing.assert_allclose(ours[:3], theirs, atol=1e-4)
    assert volume.findings == []


def test_qform_sform_mismatch_uses_sform_and_warns(tmp_path):
    affine = rotated_affine()
    shifted = affine.copy()
    shifted[:3, 3] += 5
    path = save(tmp_path, np.zeros((4, 4, 4), np.float32), affine, q_affine=shifted)
    volume = load_volume(path)
    assert volume.reason_codes == ["QFORM_SFORM_MISMATCH"]
    np.testing.assert_allclose(volume.origin, [-affine[0, 3], -affine[1, 3], affine[2, 3]])


def test_no_spatial_transform_is_flagged(tmp_path):
    path = save(tmp_path, np.zeros((4, 4, 4), np.float32), np.eye(4), qform=0, sform=0)
    assert load_volume(path).reason_codes == ["NO_SPATIAL_TRANSFORM"]


def test_sheared_affine_is_kept_and_flagged(tmp_path):
    affine = np.eye(4)
    affine[0, 1] = 0.5
    path = save(tmp_path, np.zeros((4, 4, 4), np.float32), affine, qform=0)
    assert load_volume(path).reason_codes == ["SHEARED_AFFINE"]


def test_truncated_gz_is_refused_at_load(tmp_path):
    path = save(tmp_path, np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32), np.eye(4))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError) as error:
        load_volume(path)
    assert error.value.reason == "NIFTI_TRUNCATED"


def test_truncated_uncompressed_is_refused_at_load(tmp_path):
    path = save(tmp_path, np.ones((20, 20, 20), np.float32), np.eye(4), name="img.nii")
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(InputError, match="truncated") as error:
        load_volume(path)
    assert error.value.reason == "NIFTI_TRUNCATED"


def test_analyze_header_without_data_file(tmp_path):
    image = nib.Nifti1Pair(np.zeros((3, 3, 3), np.float32), np.eye(4))
    nib.save(image, tmp_path / "pair.hdr")
    (tmp_path / "pair.img").unlink()
    with pytest.raises(InputError) as error:
        load_volume(tmp_path / "pair.hdr")
    assert error.value.reason == "NIFTI_MISSING_DATA"


def test_big_endian_and_singleton_dims_are_converted(tmp_path):
    data = np.arange(24, dtype=">i2").reshape(2, 3, 4, 1)
    path = save(tmp_path, data, np.eye(4))
    volume = load_volume(path)
    assert volume.array.shape == (4, 3, 2)
    assert volume.array.dtype.byteorder in ("=", "|", "<")
    np.testing.assert_array_equal(volume.array, data[..., 0].astype(np.float32).transpose(2, 1, 0))


def test_scaled_label_with_fractions_is_refused(tmp_path):
    image = nib.Nifti1Image(np.array([[[0, 1], [2, 3]]] * 2, dtype=np.int16), np.eye(4))
    image.header.set_slope_inter(0.5, 0)
    nib.save(image, tmp_path / "mask.nii.gz")
    with pytest.raises(InputError) as error:
        load_volume(tmp_path / "mask.nii.gz", as_label=True)
    assert error.value.reason == "LABEL_NOT_INTEGER"
    assert load_volume(tmp_path / "mask.nii.gz").array.max() == 1.5  # fine as an image


def test_integer_label_loads_as_integers(tmp_path):
    path = save(tmp_path, np.array([[[0, 1], [2, 1]]] * 2, dtype=np.uint8), np.eye(4), name="m.nii.gz")
    volume = load_volume(path, as_label=True)
    assert np.issubdtype(volume.array.dtype, np.integer) and set(np.unique(volume.array)) == {0, 1, 2}


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_simpleitk_formats_keep_geometry(tmp_path, suffix):
    image = sitk.GetImageFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    image.SetSpacing((0.5, 0.7, 2.0))
    image.SetOrigin((1.0, 2.0, 3.0))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))
    sitk.WriteImage(image, str(tmp_path / f"img{suffix}"))
    volume = load_volume(tmp_path / f"img{suffix}")
    assert volume.spacing == (2.0, 0.7, 0.5)
    np.testing.assert_allclose(volume.affine @ [2, 3, 4, 1], [*image.TransformIndexToPhysicalPoint((4, 3, 2)), 1])


def raw_nifti(path, data, pixdim=(1.0, 1.0, 1.0), codes=(0, 0), dtype="<f4"):
    """A .nii written byte by byte, so that broken headers stay broken (nibabel would repair them on save)."""
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(np.dtype(dtype))
    header["pixdim"][1:4] = pixdim
    header["qform_code"], header["sform_code"] = codes
    header["vox_offset"] = 352
    path.write_bytes(header.binaryblock + b"\0" * 4 + np.asarray(data, dtype).tobytes("F"))
    return path


@pytest.mark.parametrize("pixdim", [(np.nan, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, np.inf)])
def test_nan_or_zero_voxel_size_is_refused_never_invented(tmp_path, pixdim):
    path = raw_nifti(tmp_path / "a.nii", np.ones((4, 5, 6)), pixdim)
    with pytest.raises(InputError) as error:
        load_volume(path)
    assert error.value.reason == "NO_GEOMETRY"


def test_zero_spacing_on_a_singleton_axis_is_harmless(tmp_path):
    volume = load_volume(raw_nifti(tmp_path / "a.nii", np.ones((4, 5, 1)), (0.5, 0.5, 0.0)))
    assert volume.array.shape == (1, 5, 4) and volume.spacing[1:] == (0.5, 0.5)


@pytest.mark.parametrize("data, dtype, reason", [
    (np.ones((4, 5, 0)), "<f4", "EMPTY_IMAGE"),
    (np.ones((4, 5, 6)), "<c8", "NON_SCALAR_IMAGE"),
    (np.full((4, 5, 6), np.nan), "<f4", "NON_FINITE_VALUES")])
def test_empty_complex_and_nan_images_are_refused(tmp_path, data, dtype, reason):
    with pytest.raises(InputError) as error:
        load_volume(raw_nifti(tmp_path / "a.nii", data, dtype=dtype))
    assert error.value.reason == reason


def test_a_header_declaring_a_huge_image_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_MAX_VOLUME_MB", "64")
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 2048))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    (tmp_path / "huge.nii").write_bytes(header.binaryblock + b"\0" * 12)
    with pytest.raises(InputError) as error:
        load_volume(tmp_path / "huge.nii")
    assert error.value.reason == "TOO_LARGE"


def test_content_not_suffix_decides_between_analyze_and_dicom(tmp_path):
    from medtl.io.nifti import is_nifti_path, looks_like_dicom

    dicom = tmp_path / "0001.img"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    analyze = tmp_path / "brain.img"
    analyze.write_bytes(b"\x01\x02" * 200)
    assert looks_like_dicom(dicom) and not is_nifti_path(dicom)
    assert not looks_like_dicom(analyze) and is_nifti_path(analyze)
    assert is_nifti_path(tmp_path / "missing.nii.gz")
