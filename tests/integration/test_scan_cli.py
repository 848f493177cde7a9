"""`medtl scan` on messy exports: every file accounted for once, no PHI in any output."""

import csv
import gzip
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medtl.cli import main
from medtl.io.scan import list_files, scan_export
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_radiograph, write_series

PHI = ["DOE^JOHN_12345", "DOE^JOHN", "ACC000000", "19700101"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def messy_export(tmp_path):
    root = tmp_path / "export"
    patient = root / "DOE^JOHN_12345"
    ct = SeriesSpec(stored=phantom_volume((6, 16, 16)), patient_id="DOE^JOHN_12345", patient_name="DOE^JOHN")
    paths = write_series(patient / "study1", ct)
    write_series(patient / "study1", SeriesSpec(stored=phantom_volume((4, 16, 16)), series_number=2,
                                                patient_id="DOE^JOHN_12345", patient_name="DOE^JOHN"))
    write_radiograph(patient / "cr" / "chest.dcm", np.full((32, 32), 900, np.uint16), modality="CR",
                     photometric="MONOCHROME1", patient_id="DOE^JOHN_12345")
    shutil.copy(paths[0], patient / "study1" / "copy.dcm")  # exact duplicate
    (patient / "notes.txt").write_text("patient DOE^JOHN called")
    (patient / "empty").write_bytes(b"")
    (patient / "zipped.dcm.gz").write_bytes(gzip.compress(paths[1].read_bytes()))
    truncated = pydicom.dcmread(paths[2])
    truncated.SOPInstanceUID = truncated.file_meta.MediaStorageSOPInstanceUID = "1.2.3.999"
    truncated.save_as(patient / "cut.dcm")
    (patient / "cut.dcm").write_bytes((patient / "cut.dcm").read_bytes()[:-50])
    scout = pydicom.dcmread(paths[3])
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.SOPInstanceUID = scout.file_meta.MediaStorageSOPInstanceUID = "1.2.3.998"
    scout.save_as(patient / "scout.dcm")
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.eye(4)), root / "vol.nii.gz")
    nib.save(nib.Nifti1Pair(np.ones((3, 3, 3), np.float32), np.eye(4)), root / "pair.hdr")
    nib.save(nib.Nifti1Pair(np.ones((3, 3, 3), np.float32), np.eye(4)), root / "orphan.hdr")
    (root / "orphan.img").unlink()
    return root


def test_scan_accounts_for_every_file_once(messy_export, tmp_path):
    out = tmp_path / "scan"
    assert main(["scan", str(messy_export), "--out", str(out), "--quiet"]) == 0
    series, skipped = read_csv(out / "series.csv"), read_csv(out / "skipped.csv")
    summary = json.loads((out / "scan.json").read_text())
    found = len(list_files(messy_export))
    assert summary["files_found"] == found == 21
    assert sum(int(r["n_files"]) for r in series) + len(skipped) == found
    assert sorted(r["reason"] for r in skipped) == sorted(
        ["NOT_DICOM", "NOT_DICOM", "GZIP_WRAPPED", "TRUNCATED_PIXEL_DATA", "LOCALIZER", "DUPLICATE_DROPPED",
         "NIFTI_MISSING_DATA"])
    kinds = sorted((r["kind"], r["n_files"]) for r in series)
    assert kinds == [("2d", "1"), ("3d", "1"), ("3d", "2"), ("3d", "4"), ("3d", "6")]
    assert list(series[0]) == ["series_key", "patient_key", "site_key", "modality", "kind", "n_files", "shape",
                               "spacing", "status", "reasons"]


def test_scan_outputs_hold_no_patient_data(messy_export, tmp_path):
    out = tmp_path / "scan"
    main(["scan", str(messy_export), "--out", str(out), "--quiet"])
    uids = {str(pydicom.dcmread(p, stop_before_pixels=True).get(tag, ""))
            for p in messy_export.rglob("*") if p.suffix == "" and p.is_file() and p.stat().st_size > 200
            for tag in ("SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID")} - {""}
    for name in ("series.csv", "skipped.csv", "scan.json"):
        text = (out / name).read_text()
        for secret in PHI + sorted(uids) + ["export", str(messy_export)]:
            assert secret not in text, f"{secret} leaked into {name}"
    patient_keys = {r["patient_key"] for r in read_csv(out / "series.csv") if r["modality"]}
    assert len(patient_keys) == 1 and len(next(iter(patient_keys))) == 16


def test_keep_paths_writes_relative_paths(messy_export, tmp_path):
    out = tmp_path / "scan"
    main(["scan", str(messy_export), "--out", str(out), "--quiet", "--keep-paths"])
    skipped = {r["file"] for r in read_csv(out / "skipped.csv")}
    assert os.path.join("DOE^JOHN_12345", "notes.txt") in skipped
    assert all("path" in r and not os.path.isabs(r["path"]) for r in read_csv(out / "series.csv"))


def test_scan_keys_are_stable_across_runs_and_parallelism(messy_export, tmp_path):
    one = scan_export(messy_export, workers=1, progress=False)
    two = scan_export(messy_export, workers=2, progress=False)
    assert one.series_rows == two.series_rows and one.skipped_rows == two.skipped_rows


def test_missing_export_dir_is_exit_2(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_with_nothing_readable_is_exit_2_with_inventory(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x")
    assert main(["scan", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no usable series" in capsys.readouterr().err
    assert read_csv(tmp_path / "o" / "skipped.csv")[0]["reason"] == "NOT_DICOM"


@pytest.mark.parametrize("package", ["pydicom", "nibabel"])
def test_scan_of_public_test_corpora_shipped_in_packages(package, tmp_path):
    """Files we did not write: nothing crashes and every file is accounted for."""
    module = __import__(package)
    root = Path(module.__file__).parent / ("data/test_files" if package == "pydicom" else "tests/data")
    result = scan_export(root, progress=False)
    assert result.files_found > 50
    assert sum(r["n_files"] for r in result.series_rows) + len(result.skipped_rows) == result.files_found
    assert len(result.series_rows) >= 3
    if package == "nibabel":  # a resampled image with NaN outside its field of view is refused, not loaded;
        # 0.dcm/1.dcm are mosaics whose 48 declared slices do not tile their 256x256 frame (nibabel cannot read
        # them either): refused, never returned as a flat image
        reasons = {r["reason"] for r in result.skipped_rows}
        assert {"NON_FINITE_VALUES", "MOSAIC_UNREADABLE"} <= reasons


def test_verify_pixels_refuses_a_series_with_a_corrupt_codestream(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    root = tmp_path / "export"
    paths = write_series(root, SeriesSpec(stored=phantom_volume((4, 8, 8))))
    ds = pydicom.dcmread(paths[1])
    ds.compress(RLELossless)
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\0" * 60 + b"\x7f" * 10])
    ds.save_as(paths[1])
    assert len(scan_export(root, progress=False).series_rows) == 1  # header-only scan cannot know
    result = scan_export(root, progress=False, verify_pixels=True)
    assert result.series_rows == []
    assert [r["reason"] for r in result.skipped_rows] == ["DECODE_FAILED"] * 4


def test_links_to_folders_are_one_entry_each_and_never_followed(tmp_path):
    """Issue 28.3: a symlinked folder was unaccounted (neither listed nor reported); a loop must not hang."""
    root = tmp_path / "export"
    elsewhere = tmp_path / "elsewhere"
    write_series(elsewhere / "series", SeriesSpec(np.zeros((4, 16, 16), np.int16)))
    (root / "real").mkdir(parents=True)
    (root / "real" / "notes.txt").write_text("x")
    (root / "linked_series").symlink_to(elsewhere / "series", target_is_directory=True)
    (root / "real" / "loop").symlink_to(root, target_is_directory=True)
    result = scan_export(root, progress=False)
    assert result.files_found == 3  # notes.txt and the two links
    assert sum(r["n_files"] for r in result.series_rows) + len(result.skipped_rows) == result.files_found
    assert sorted(r["reason"] for r in result.skipped_rows) == ["NOT_DICOM", "SYMLINKED_FOLDER", "SYMLINKED_FOLDER"]


def _scan_as_nobody(root: Path) -> dict:
    """``scan_export`` in a forked child that dropped root (root lists every folder, so permissions cannot be
    tested as root); the parent scanned once already, so every module the scan needs is imported."""
    scan_export(root, keep_paths=True, progress=False)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            result = scan_export(root, keep_paths=True, progress=False)
            os.write(write_end, json.dumps({"found": result.files_found, "rows": result.series_rows,
                                            "skipped": result.skipped_rows}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    return json.loads(text)


def test_a_folder_that_cannot_be_listed_is_one_permission_denied_entry_as_a_non_root_user(tmp_path):
    """Issue 28.3: a folder the user cannot list was neither listed nor reported."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="medtl-perm-", dir="/tmp")) / "export"
    try:
        write_series(root / "readable", SeriesSpec(stored=phantom_volume((4, 8, 8))))
        write_series(root / "locked", SeriesSpec(stored=phantom_volume((3, 8, 8)), series_number=2))
        (root / "notes.txt").write_text("x")
        for folder, _, names in os.walk(root.parent):
            os.chmod(folder, 0o755)
            for name in names:
                os.chmod(os.path.join(folder, name), 0o644)
        os.chmod(root / "locked", 0o311)  # enterable, not listable: its 3 files cannot even be counted
        result = _scan_as_nobody(root) if os.geteuid() == 0 else json.loads(json.dumps({
            "found": (r := scan_export(root, keep_paths=True, progress=False)).files_found,
            "rows": r.series_rows, "skipped": r.skipped_rows}))
    finally:
        os.chmod(root / "locked", 0o755)
        shutil.rmtree(root.parent)
    assert result["found"] == 4 + 1 + 1  # the readable series, notes.txt, and the locked folder as one entry
    assert [(r["file"], r["reason"]) for r in result["skipped"] if r["reason"] == "PERMISSION_DENIED"] == [
        ("locked", "PERMISSION_DENIED")]
    assert sum(r["n_files"] for r in result["rows"]) + len(result["skipped"]) == result["found"]


def test_an_accounting_bug_still_writes_the_inventory_and_exits_non_zero_in_one_line(messy_export, tmp_path,
                                                                                       monkeypatch, capsys):
    """Issue 28.1: a double count in split volumes cost the user the whole inventory (RuntimeError, traceback)."""
    from medtl.io import scan

    real = scan.index_headers

    def loses_a_file(*args, **kwargs):  # one file lost in a bug
        index = real(*args, **kwargs)
        index.skipped.pop()
        return index

    monkeypatch.setattr(scan, "index_headers", loses_a_file)
    code = main(["scan", str(messy_export), "--out", str(tmp_path / "o"), "--quiet"])
    error = capsys.readouterr().err
    assert code != 0 and "scan accounting is off" in error and "medtl bug" in error and "Traceback" not in error
    assert (tmp_path / "o" / "series.csv").exists() and read_csv(tmp_path / "o" / "series.csv")
    assert json.loads((tmp_path / "o" / "scan.json").read_text())["accounting_error"].startswith("scan accounting")
