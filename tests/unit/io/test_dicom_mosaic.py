"""Siemens mosaics (real headers shipped with nibabel): unpacked into 3D at the right place, or refused."""

import gzip
import warnings
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest

from medtl.errors import InputError
from medtl.io import load_volume
from medtl.io.scan import scan_export

DATA = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"


def real_mosaic(folder: Path, name: str = "siemens_dwi_1000.dcm.gz") -> Path:
    """The shipped DWI mosaic (its pixels are anonymised to 0) with a known value in every tile."""
    ds = pydicom.dcmread(__import__("io").BytesIO(gzip.open(DATA / name).read()))
    grid, tile = 7, 128
    rows, columns = np.mgrid[0:ds.Rows, 0:ds.Columns]
    tiles = (rows // tile) * grid + columns // tile
    pixels = (tiles * 80 + (rows % tile) // 16 + 10 * ((columns % tile) // 32)).astype(np.uint16)  # < 4096: 12 bits
    ds.PixelData = pixels.tobytes()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name.replace(".gz", "")
    ds.save_as(path)
    return path


def test_a_mosaic_is_a_3d_volume_with_every_slice_where_nibabel_puts_it(tmp_path):
    from nibabel.nicom import dicomwrappers

    path = real_mosaic(tmp_path)
    volume = load_volume(path)
    assert volume.array.shape == (48, 128, 128) and volume.metadata["kind"] == "3d"
    assert [int(volume.array[k, 0, 0]) // 80 for k in range(48)] == list(range(48))  # tile k is slice k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = dicomwrappers.wrapper_from_data(pydicom.dcmread(path))
        assert np.array_equal(reference.get_data().transpose(2, 0, 1), volume.array)
    for index in [(0, 0, 0), (47, 127, 127), (10, 5, 100), (30, 90, 3)]:
        k, r, c = index
        ours = np.asarray(volume.origin) + volume.direction @ (np.asarray(volume.spacing) * np.array(index))
        theirs = (reference.affine @ np.array([r, c, k, 1.0]))[:3]
        assert np.allclose(ours, theirs, atol=1e-3), index
    header = pydicom.dcmread(path)
    assert np.linalg.norm(np.asarray(volume.origin) - np.asarray(header.ImagePositionPatient, float)) > 300


def test_a_mosaic_without_a_slice_count_is_refused_never_returned_as_2d(tmp_path):
    path = real_mosaic(tmp_path / "export")
    ds = pydicom.dcmread(path)
    for tag in [(0x0019, 0x100A), (0x0029, 0x1010), (0x0029, 0x1020)]:
        if tag in ds:
            del ds[tag]
    ds.save_as(path)
    result = scan_export(tmp_path / "export", progress=False)
    assert result.series_rows == [] and [r["reason"] for r in result.skipped_rows] == ["MOSAIC_UNREADABLE"]
    with pytest.raises(InputError):
        load_volume(path)


def test_a_series_of_diffusion_mosaics_is_one_volume_per_b_value_and_direction(tmp_path):
    real_mosaic(tmp_path / "dwi", "siemens_dwi_0.dcm.gz")
    real_mosaic(tmp_path / "dwi", "siemens_dwi_1000.dcm.gz")
    result = scan_export(tmp_path / "dwi", progress=False)
    assert sum(r["n_files"] for r in result.series_rows) + len(result.skipped_rows) == 2
    volumes = [r for r in result.series_rows if r["kind"] == "3d"]
    assert len(volumes) == 2 and all(r["shape"] == "48x128x128" for r in volumes)


def test_unpack_takes_tiles_row_by_row_and_drops_the_empty_ones():
    from medtl.io.dicom_mosaic import MosaicLayout, unpack

    layout = MosaicLayout(slices=5, grid=3, tile_rows=2, tile_columns=4, first_position=(0.0, 0.0, 0.0),
                          normal=(0.0, 0.0, 1.0), spacing=1.0)
    frame = np.zeros((1, 6, 12), np.int16)
    for tile in range(9):
        row, column = divmod(tile, 3)
        frame[0, row * 2:(row + 1) * 2, column * 4:(column + 1) * 4] = tile
    slices = unpack(frame, layout)
    assert slices.shape == (5, 2, 4)
    assert [int(s.min()) for s in slices] == [int(s.max()) for s in slices] == [0, 1, 2, 3, 4]
