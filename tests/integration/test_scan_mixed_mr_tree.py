"""Issue 28.1: a real multi-vendor MR tree crashed `medtl scan` with "924 accounted for, 652 found".

The tree below mixes every way one file can feed several volumes or one volume can drop
files (Siemens DWI mosaics, classic DTI split by b-value and direction, fMRI split by its
instance cycle, an enhanced 4D file split by DimensionIndexValues, a classic and an
enhanced copy of one series, two enhanced copies of one series, a 4D series whose
volumes repeat some slices exactly and differ at others), all under one folder. Every
file must be accounted exactly once: in one series row or in one skipped row.
"""

import json
from collections import Counter

import pydicom
import pytest

from medtl.cli import main
from medtl.io.scan import list_files, scan_export
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_enhanced_4d, write_enhanced_ct, write_series
from tests.integration.test_scan_cli import read_csv
from tests.unit.io.test_dicom_mosaic import real_mosaic


def _new_uid(ds):
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()


def _dti(folder, seed=10):
    for k, (b_value, direction) in enumerate([(0, (0.0, 0.0, 0.0)), (1000, (1.0, 0.0, 0.0)),
                                              (1000, (0.0, 1.0, 0.0))]):
        def edit(ds, index, k=k, b_value=b_value, direction=direction):
            _new_uid(ds)
            ds.add_new(0x00189087, "FD", float(b_value))
            ds.add_new(0x00189089, "FD", list(direction))
            ds.InstanceNumber = k * 6 + index + 1

        write_series(folder, SeriesSpec(stored=phantom_volume((6, 12, 12), seed=seed + k), seed=5, modality="MR"),
                     edit=edit)


def _fmri(folder):
    for volume in range(3):
        def edit(ds, index, volume=volume):
            _new_uid(ds)
            ds.InstanceNumber = volume * 5 + index + 1
            for keyword in ("TemporalPositionIdentifier", "AcquisitionNumber", "TriggerTime"):
                if keyword in ds:
                    delattr(ds, keyword)

        write_series(folder, SeriesSpec(stored=phantom_volume((5, 10, 10), seed=30 + volume), seed=9, modality="MR"),
                     edit=edit)


def _classic_and_enhanced(folder, spec):
    classic = write_series(folder, spec)
    enhanced = write_enhanced_ct(folder / "enhanced.dcm", spec)
    ds = pydicom.dcmread(enhanced)
    ds.SeriesInstanceUID = pydicom.dcmread(classic[0]).SeriesInstanceUID
    ds.save_as(enhanced)


def _two_enhanced_copies(folder, spec):
    """One enhanced file exported twice under two SOPInstanceUIDs (same pixels, same positions)."""
    first = write_enhanced_ct(folder / "a.dcm", spec)
    ds = pydicom.dcmread(first)
    _new_uid(ds)
    ds.save_as(folder / "b.dcm")


def _repeats_then_differs(folder):
    """Two acquisitions of one series, no key telling them apart: 5 slices identical, the last one not."""
    stored = phantom_volume((6, 10, 10), seed=60)
    changed = stored.copy()
    changed[-1] += 7
    for name, pixels in (("v1", stored), ("v2", changed)):
        def edit(ds, index, name=name):
            _new_uid(ds)
            del ds.InstanceNumber

        write_series(folder / name, SeriesSpec(stored=pixels, seed=61, modality="MR"), shuffle=False, edit=edit)


@pytest.fixture(scope="module")
def mixed_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mr") / "export"
    real_mosaic(root / "mosaic", "siemens_dwi_1000.dcm.gz")
    real_mosaic(root / "mosaic", "siemens_dwi_0.dcm.gz")
    _dti(root / "dti")
    _fmri(root / "fmri")
    ct = SeriesSpec(stored=phantom_volume((6, 12, 14), seed=3), spacing=(2.5, 0.7, 0.8), seed=20)
    write_enhanced_4d(root / "enhanced4d" / "4d.dcm", ct, seed=21)
    _classic_and_enhanced(root / "copies", SeriesSpec(stored=phantom_volume((6, 12, 14), seed=4), seed=22))
    _two_enhanced_copies(root / "enhanced_twice", SeriesSpec(stored=phantom_volume((6, 12, 14), seed=5), seed=23))
    _repeats_then_differs(root / "repeats")
    return root


def test_every_file_of_a_mixed_mr_tree_is_accounted_exactly_once(mixed_tree):
    result = scan_export(mixed_tree, keep_paths=True, progress=False)
    assert result.summary["accounting_error"] is None
    files = {str(p.relative_to(mixed_tree)) for p in mixed_tree.rglob("*") if p.is_file()}
    in_series = Counter(str(__import__("os").path.relpath(f, mixed_tree)) for s in result.sources for f in s.files)
    skipped = Counter(r["file"] for r in result.skipped_rows)
    assert all(n == 1 for n in in_series.values()), in_series
    assert all(n == 1 for n in skipped.values()), skipped
    assert not set(in_series) & set(skipped)
    assert set(in_series) | set(skipped) == files
    assert sum(r["n_files"] for r in result.series_rows) + len(result.skipped_rows) == len(files)
    # each split volume is listed with its part
    parts = [r["reasons"] for r in result.series_rows if "SERIES_SPLIT" in r["reasons"]]
    assert len(parts) >= 3 + 3 + 2 + 2


def test_the_mixed_tree_scans_with_exit_0_and_the_inventory_adds_up(mixed_tree, tmp_path):
    out = tmp_path / "scan"
    assert main(["scan", str(mixed_tree), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "scan.json").read_text())
    series, skipped = read_csv(out / "series.csv"), read_csv(out / "skipped.csv")
    assert sum(int(r["n_files"]) for r in series) + len(skipped) == summary["files_found"] == len(
        list_files(mixed_tree))
