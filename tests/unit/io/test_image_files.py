"""PNG/JPEG/TIFF images: gray as is, equal-channel colour as gray, colour refused or converted by the rule."""

import numpy as np
import pytest
import SimpleITK as sitk

from medtl.errors import InputError
from medtl.io import load_volume


def write(path, array, vector=False):
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=vector), str(path))
    return path


def test_16_bit_png_loads_exactly_with_spacing_recorded_as_unknown(tmp_path):
    array = np.random.default_rng(0).integers(0, 65535, (40, 30)).astype(np.uint16)
    volume = load_volume(write(tmp_path / "a.png", array))
    assert volume.array.shape == (40, 30) and np.array_equal(volume.array, array.astype(np.float32))
    assert volume.reason_codes == ["NO_PIXEL_SPACING"] and volume.spacing == (1.0, 1.0)


def test_colour_images_follow_the_rule(tmp_path):
    gray = np.random.default_rng(1).integers(0, 255, (20, 24)).astype(np.uint8)
    as_rgb = write(tmp_path / "gray_rgb.png", np.stack([gray] * 3, -1), vector=True)
    assert np.array_equal(load_volume(as_rgb).array, gray.astype(np.float32))  # lossless, always
    colour = np.stack([gray, 255 - gray, gray // 2], -1).astype(np.uint8)
    path = write(tmp_path / "colour.png", colour, vector=True)
    with pytest.raises(InputError, match="data.rgb: luminance") as error:
        load_volume(path)
    assert error.value.reason == "NON_SCALAR_IMAGE"
    volume = load_volume(path, rgb="luminance")
    expected = colour.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.allclose(volume.array, expected) and "RGB_TO_LUMINANCE" in volume.reason_codes


def test_label_pngs_and_an_image_in_an_export_get_a_hint(tmp_path):
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:7] = 1
    assert np.array_equal(load_volume(write(tmp_path / "m.png", mask), as_label=True).array, mask)
    from medtl.io.dicom_header import read_dicom_header

    assert "manifest" in read_dicom_header(tmp_path / "m.png").skip.detail
