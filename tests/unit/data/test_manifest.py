"""Manifest errors name the row and column to fix."""

import pytest

from medtl.data.manifest import read_manifest
from medtl.errors import InputError


def test_manifest_errors_name_the_row(tmp_path):
    (tmp_path / "m.csv").write_text("image,label,patient_id\na.dcm,1,p1\n,0,p2\n")
    with pytest.raises(InputError, match="line 3"):
        read_manifest(tmp_path / "m.csv", "classification")
    (tmp_path / "m.csv").write_text("image,patient_id\na.dcm,p1\n")
    with pytest.raises(InputError, match="lacks column"):
        read_manifest(tmp_path / "m.csv", "classification")
