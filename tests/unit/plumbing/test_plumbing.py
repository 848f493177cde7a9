"""Atomic writes, the one file hasher, and the registry."""

import json
import math

import pytest

from medtl.errors import UnknownNameError
from medtl.plumbing.atomic import atomic_path, write_atomic, write_json
from medtl.plumbing.hashing import sha256_file, sha256_path, sha256_text
from medtl.plumbing.registry import Registry


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out" / "result.nii.gz"
    write_atomic(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith("result.nii.gz")  # writers that pick the format by suffix still work
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["result.nii.gz"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and len(list(target.parent.iterdir())) == 1


def test_non_finite_numbers_are_written_as_null(tmp_path):
    write_json(tmp_path / "m.json", {"auc": math.nan, "ci": [math.inf, 0.5]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"auc": None, "ci": [None, 0.5]}


def test_hashes_of_files_folders_and_text(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.dcm").write_bytes(b"1")
    (tmp_path / "b.dcm").write_bytes(b"1")
    assert sha256_file(tmp_path / "b.dcm") == sha256_text("1")
    folder = sha256_path(tmp_path / "a")
    (tmp_path / "a" / "x.dcm").rename(tmp_path / "a" / "y.dcm")
    assert sha256_path(tmp_path / "a") != folder  # names are part of a folder's content
    assert sha256_text("ab") == sha256_text("a", "b")


def test_registry_refuses_duplicates_and_suggests_close_names():
    loaded = []
    registry = Registry("widget", loader=lambda: loaded.append(registry.register("round", 1)))
    assert registry.get("round") == 1 and loaded == [1]
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("round", 2)
    with pytest.raises(UnknownNameError, match="did you mean 'round'"):
        registry.get("rund")
    assert registry.names() == ["round"] and "round" in registry and list(registry) == [1]


def test_csv_cells_neutralise_formulas_keep_numbers_and_round_trip(tmp_path):
    from medtl.plumbing.atomic import csv_cell, read_csv, write_csv

    values = ["=1+1", "+cmd", "-2+3", "@SUM(1)", "\tx", "-1", "+2.5", "plain", "'=quoted"]
    assert [csv_cell(v) for v in values[:6]] == ["'=1+1", "'+cmd", "'-2+3", "'@SUM(1)", "'\tx", "-1"]
    assert csv_cell(float("nan")) == "" and csv_cell(float("inf")) == "" and csv_cell(0.5) == 0.5
    write_csv(tmp_path / "t.csv", ["v"], [{"v": v} for v in values[:8]])
    _, rows = read_csv(tmp_path / "t.csv")
    assert [r["v"] for r in rows] == values[:8]


def test_orphan_temporaries_of_dead_processes_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    from medtl.plumbing.atomic import remove_orphan_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "a").mkdir()
    orphan = tmp_path / "a" / f".tmp-{dead.stdout.strip()}-xyz-state.pt"
    orphan.write_bytes(b"half")
    ours = tmp_path / f".tmp-{os.getpid()}-abc-model.safetensors"
    ours.write_bytes(b"being written")
    keep = tmp_path / "model.safetensors"
    keep.write_bytes(b"done")
    assert remove_orphan_temps(tmp_path) == 1
    assert not orphan.exists() and ours.exists() and keep.exists()


def test_outputs_follow_the_umask_and_private_files_stay_private(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "report.html", "x")
        with atomic_path(tmp_path / "salt", mode=0o600) as tmp:
            tmp.write_text("s")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "salt").stat().st_mode) == 0o600


def test_a_published_folder_appears_whole_with_its_files_linked_not_copied(tmp_path):
    from medtl.plumbing.atomic import publish_folder

    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "model.safetensors").write_bytes(b"x" * 1000)
    (source / "sub" / "done.json").write_text("{}")
    target = tmp_path / "arms" / "tuned" / "repeat0_fold1"
    target.parent.mkdir(parents=True)
    target.mkdir()
    (target / "stale.txt").write_text("old")  # an earlier, partial publication is replaced, not merged
    publish_folder(source, target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == \
        ["model.safetensors", "sub", "sub/done.json"]
    assert (target / "model.safetensors").stat().st_ino == (source / "model.safetensors").stat().st_ino
    assert not list(target.parent.glob(".tmp-*"))
