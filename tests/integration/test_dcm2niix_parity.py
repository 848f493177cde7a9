"""Parity with dcm2niix, the de-facto reference converter: volume counts of 4D series and mosaic geometry.

Runs where ``dcm2niix`` is installed (``apt-get install dcm2niix``); skipped elsewhere.
"""

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medtl.io import load_volumes
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series
from tests.unit.io.test_dicom_mosaic import real_mosaic

pytestmark = pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix is not installed")


def convert(folder, out):
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dcm2niix", "-z", "n", "-o", str(out), str(folder)], capture_output=True, check=False)
    images = [nib.load(str(f)) for f in sorted(out.glob("*.nii"))]
    return images, sum(img.shape[3] if img.ndim == 4 else 1 for img in images)


def write_4d(folder, volumes, tags):
    for k in range(volumes):
        spec = SeriesSpec(stored=phantom_volume((6, 16, 16), seed=50 + k), seed=7, modality="MR")

        def edit(ds, index, k=k):
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.InstanceNumber = k * 6 + index + 1
            tags(ds, k)

        write_series(folder, spec, edit=edit)


def dti_tags(ds, k):
    b_value, direction = (0.0, [0.0, 0.0, 0.0]) if k == 0 else (1000.0, list(np.eye(3)[(k - 1) % 3]))
    ds.add_new(0x00189087, "FD", b_value)
    ds.add_new(0x00189089, "FD", direction)


def fmri_tags(ds, k):
    ds.TemporalPositionIdentifier = ds.AcquisitionNumber = k + 1


@pytest.mark.parametrize("volumes, tags", [(4, dti_tags), (5, fmri_tags)], ids=["dti", "fmri"])
def test_4d_series_give_as_many_volumes_as_dcm2niix(tmp_path, volumes, tags):
    write_4d(tmp_path / "series", volumes, tags)
    _, theirs = convert(tmp_path / "series", tmp_path / "out")
    assert len(load_volumes(tmp_path / "series")) == theirs == volumes


def test_mosaic_volumes_and_corners_match_dcm2niix(tmp_path):
    real_mosaic(tmp_path / "one", "siemens_dwi_1000.dcm.gz")
    (image,), count = convert(tmp_path / "one", tmp_path / "out")
    (volume,) = load_volumes(tmp_path / "one").values()
    assert count == 1 and image.shape[:3] == volume.array.shape[::-1]
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    ours = {tuple(np.round(lps_to_ras @ (np.asarray(volume.origin) + volume.direction @ (
        np.asarray(volume.spacing) * np.array([(s - 1) * c for s, c in zip(volume.array.shape, corner)]))), 2))
        for corner in np.ndindex(2, 2, 2)}
    theirs = {tuple(np.round((image.affine @ np.array([*((s - 1) * c for s, c in zip(image.shape[:3], corner)),
                                                          1.0]))[:3], 2)) for corner in np.ndindex(2, 2, 2)}
    assert ours == theirs
