"""Output names come from safe stems and are refused unless they stay inside the output folder."""

import os

import pytest

from medtl.errors import OutsideOutputError
from medtl.plumbing.paths import contained, missing_file_message, safe_stem


@pytest.mark.parametrize("key", ["../../x", "/etc/passwd", "..", ".hidden", "a/b", "a\\b", "=cmd", "x" * 65, "",
                                 "name\nwith newline", "DOE^JOHN"])
def test_hostile_ids_become_hashes(key):
    stem = safe_stem(key)
    assert stem.startswith("id-") and len(stem) == 19 and "/" not in stem


def test_plain_ids_stay_readable_and_distinct_ids_stay_distinct():
    assert safe_stem("case_017.a-b") == "case_017.a-b"
    assert len({safe_stem(k) for k in ["../a", "../b", "/a", "a/.."]}) == 4


def test_contained_refuses_every_way_out(tmp_path):
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    assert contained(out, "masks/a.nii.gz") == out / "masks" / "a.nii.gz"
    for bad in ("../x", "/tmp/x", "masks/../../x"):
        with pytest.raises(OutsideOutputError):
            contained(out, bad)
    os.symlink(tmp_path, out / "link")
    with pytest.raises(OutsideOutputError):
        contained(out, "link/x")
    os.symlink("loop2", out / "loop1")
    os.symlink("loop1", out / "loop2")
    with pytest.raises(OutsideOutputError):
        contained(out, "loop1/x")


def test_missing_file_message_names_the_closest_file(tmp_path):
    (tmp_path / "source.safetensors").write_bytes(b"")
    assert "did you mean" in missing_file_message(tmp_path / "sourse.safetensors", "checkpoint", "fix it")
    assert "does not exist" in missing_file_message(tmp_path / "nope" / "x", "checkpoint", "fix it")
