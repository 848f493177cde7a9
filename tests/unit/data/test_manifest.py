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


def test_numeric_labels_are_one_class_whatever_their_spelling(tmp_path):
    (tmp_path / "m.csv").write_text("image,label,patient_id\na.dcm,1,p1\nb.dcm,1.0,p2\nc.dcm,0,p3\nd.dcm,0.0,p4\n"
                                    "e.dcm, 01,p5\n")
    manifest = read_manifest(tmp_path / "m.csv", "classification")
    assert manifest.class_names == ["0", "1"]
    assert [c.label for c in manifest.cases] == ["1", "1", "0", "0", "1"]
    (tmp_path / "n.csv").write_text("image,label,patient_id\na.dcm,benign,p1\nb.dcm,Benign,p2\n")
    assert read_manifest(tmp_path / "n.csv", "classification").class_names == ["Benign", "benign"]
