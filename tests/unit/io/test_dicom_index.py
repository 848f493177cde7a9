"""Headers packed by series in the workers (``medtl.io.dicom_index``): nothing lost, nothing changed, little held."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom.data
import pytest

from medtl.io.dicom_header import read_dicom_header
from medtl.io.dicom_index import index_headers
from medtl.io.dicom_records import series_group
from medtl.io.scan import list_files, scan_export
from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

ROOT = Path(__file__).resolve().parents[3]
PYDICOM_FILES = Path(os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm")))


def mixed_files(tmp_path: Path) -> list[str]:
    """Two interleaved series folders, the messy demo export (junk, copies, 4D, refusals) and pydicom's odd files."""
    for number in (1, 2):
        write_series(tmp_path / "a" / f"s{number}", SeriesSpec(stored=phantom_volume((12, 8, 8)), seed=number,
                                                               series_number=number))
    files = list_files(tmp_path) + list_files(ROOT / "sample_data" / "scan_demo") + list_files(PYDICOM_FILES)
    return sorted(files)


@pytest.mark.parametrize("workers", [1, 2])
def test_packed_records_are_the_files_read_one_by_one(tmp_path, workers, monkeypatch):
    monkeypatch.setattr("medtl.io.parallel.SERIAL_BELOW", 4)  # the process pool even for the small tree
    paths = mixed_files(tmp_path)
    index = index_headers(paths, workers)
    direct = [read_dicom_header(path) for path in paths]

    assert index.skipped == [info for info in direct if info.skip is not None]  # in path order
    groups = list(index.take_series())
    assert not index.packed  # handed out and released
    expected: dict[str, list] = {}
    for info in direct:
        if info.skip is None:
            expected.setdefault(series_group(info), []).append(info)
    assert [key for key, _ in groups] == list(expected)  # first appearance order, as the assembly sorted them
    assert dict(groups) == expected  # every record equal to the file read alone, in path order
    assert len(groups) > 10 and len(index.skipped) > 5


def test_a_series_is_held_packed_in_a_fraction_of_its_records_size(tmp_path):
    """What keeps ``medtl scan``'s memory nearly flat in the number of files: records wait packed by series."""
    import sys

    files = write_series(tmp_path, SeriesSpec(stored=phantom_volume((200, 8, 8)), patient_id="P0000001"))
    index = index_headers(sorted(map(str, files)), workers=1)
    held = sum(len(blob) for blobs in index.packed.values() for blob in blobs)
    (_, records), = index.take_series()
    assert len(records) == 200
    as_objects = sum(sys.getsizeof(value) for info in records for value in (info, info.path, info.sop_instance_uid,
                                                                             info.frames, info.frames[0]))
    print(f"{held / 200:.0f} bytes per file packed, over {as_objects / 200:.0f} as objects")
    assert held < as_objects / 5


def test_an_inventory_without_sources_has_the_same_rows(tmp_path):
    export = ROOT / "sample_data" / "scan_demo"
    full = scan_export(export, progress=False, workers=1)
    rows_only = scan_export(export, progress=False, workers=1, keep_sources=False)
    assert rows_only.series_rows == full.series_rows and rows_only.skipped_rows == full.skipped_rows
    assert rows_only.sources == [] and len(full.sources) == len(full.series_rows) > 3
