"""Provenance: order-free data hashes, and the keyed training-image record finds only byte-identical images."""

import json

from medtl.data.provenance import data_hash, environment, training_overlap, write_training_images
from medtl.plumbing.hashing import sha256_path


def test_data_hash_ignores_order_and_sees_every_case():
    assert data_hash(["a", "b"]) == data_hash(["b", "a"]) != data_hash(["a", "b", "c"])


def test_training_overlap_counts_identical_files_only(tmp_path):
    seen, other = tmp_path / "seen.dcm", tmp_path / "other.dcm"
    seen.write_bytes(b"pixels-1")
    other.write_bytes(b"pixels-2")
    record = tmp_path / "training_images.json"
    write_training_images(record, [sha256_path(seen)])
    assert sha256_path(seen) not in record.read_text()  # keyed: the record cannot confirm a known image
    copy = tmp_path / "copy" / "seen.dcm"
    copy.parent.mkdir()
    copy.write_bytes(seen.read_bytes())
    assert training_overlap(record, [copy, other, tmp_path / "missing.dcm"]) == 1
    assert training_overlap(tmp_path / "absent.json", [copy]) is None


def test_environment_records_versions_seed_and_data():
    env = environment(3, "cpu", ["x", "y"], {"scratch": []})
    assert env["seed"] == 3 and env["data"] == {"n_cases": 2, "sha256": data_hash(["x", "y"])}
    assert env["packages"]["torch"] != "not installed" and json.dumps(env)
