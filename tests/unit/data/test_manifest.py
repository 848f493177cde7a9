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



@pytest.mark.parametrize("column, known", [("PatientID", "patient_id"), ("patient", "patient_id"),
                                           ("Label", "label"), ("Image", "image"), ("case id", "case_id")])
def test_near_miss_column_names_are_errors_with_the_known_name(tmp_path, column, known):
    columns = ["image", "label", "patient_id"]
    columns = [column if c == known else c for c in columns] if known in columns else columns + [column]
    (tmp_path / "m.csv").write_text(",".join(columns) + "\n" + ",".join(["a.dcm", "1", "p1"] + ["x"] * (
        len(columns) - 3)) + "\n")
    with pytest.raises(InputError, match=f"did you mean '{known}'"):
        read_manifest(tmp_path / "m.csv", "classification", single_class_ok=True)


def test_unrelated_extra_columns_are_kept_for_the_user(tmp_path):
    (tmp_path / "m.csv").write_text("image,label,patient_id,age,notes\na.dcm,1,p1,50,x\nb.dcm,0,p2,60,y\n")
    manifest = read_manifest(tmp_path / "m.csv", "classification")
    assert len(manifest.cases) == 2 and manifest.cases[1].line == 3


def test_site_values_are_kept_as_given_and_never_left_empty(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('image,label,patient_id,site\na.dcm,0,p1,Hospital A\nb.dcm,1,p2,"St. Mary\'s, wing 2"\n'
                    "c.dcm,1,p3,Hospital A\n")
    manifest = read_manifest(path, "classification")
    assert [c.site for c in manifest.cases] == ["Hospital A", "St. Mary's, wing 2", "Hospital A"]
    assert manifest.sites == ["Hospital A", "St. Mary's, wing 2"]
    path.write_text("image,label,patient_id,site\na.dcm,0,p1,A\nb.dcm,1,p2,\n")
    with pytest.raises(InputError, match="line 3: empty 'site'"):
        read_manifest(path, "classification")
    path.write_text("image,label,patient_id\na.dcm,0,p1\nb.dcm,1,p2\n")
    assert read_manifest(path, "classification").sites == []


def test_the_positive_class_goes_last_for_one_task_and_for_each_task_of_a_multitask_manifest(tmp_path):
    from medtl.config.sections import TaskSpec

    (tmp_path / "m.csv").write_text("image,label,lung,patient_id\na.png,nodule,left,p1\nb.png,normal,right,p2\n"
                                    "c.png,normal,left,p3\n")
    assert read_manifest(tmp_path / "m.csv", "classification").class_names == ["nodule", "normal"]  # sorted
    chosen = read_manifest(tmp_path / "m.csv", "classification", positive_class="nodule")
    assert chosen.class_names == ["normal", "nodule"]  # index 1 is what sensitivity calls positive
    assert [c.label for c in chosen.cases] == ["nodule", "normal", "normal"]  # labels are names, not indices
    tasks = [TaskSpec(name="nodule", kind="classification", column="label", positive_class="nodule"),
             TaskSpec(name="lung", kind="classification", column="lung")]
    multi = read_manifest(tmp_path / "m.csv", "multitask", tasks=tasks)
    assert multi.class_names == {"nodule": ["normal", "nodule"], "lung": ["left", "right"]}
    with pytest.raises(InputError, match="'lesion', which is not a class"):
        read_manifest(tmp_path / "m.csv", "classification", positive_class="lesion")
    (tmp_path / "three.csv").write_text("image,label,patient_id\na.png,x,p1\nb.png,y,p2\nc.png,z,p3\n")
    with pytest.raises(InputError, match="applies to two classes"):
        read_manifest(tmp_path / "three.csv", "classification", positive_class="x")
