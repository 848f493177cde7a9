"""Provenance: order-free data hashes, and the keyed record of training images (by pixel content)."""

import json

from medtl.data.provenance import data_hash, environment, keyed_pixel_hash, training_overlap, write_training_images


def test_data_hash_ignores_order_and_sees_every_case():
    assert data_hash(["a", "b"]) == data_hash(["b", "a"]) != data_hash(["a", "b", "c"])


def test_training_overlap_compares_keyed_pixel_hashes(tmp_path):
    record = tmp_path / "training_images.json"
    write_training_images(record, ["pixels-of-a", "pixels-of-b"])
    assert "pixels-of-a" not in record.read_text()  # keyed: the record cannot confirm a known image
    assert training_overlap(record, [keyed_pixel_hash("pixels-of-a"), keyed_pixel_hash("other"), ""]) == 1
    assert training_overlap(tmp_path / "absent.json", [keyed_pixel_hash("pixels-of-a")]) is None
    record.write_text(json.dumps({"images": ["x"]}))  # an older run hashed file bytes: not comparable
    assert training_overlap(record, [keyed_pixel_hash("pixels-of-a")]) is None


def test_environment_records_versions_seed_and_data():
    env = environment(3, "cpu", ["x", "y"], {"scratch": []})
    assert env["seed"] == 3 and env["data"] == {"n_cases": 2, "sha256": data_hash(["x", "y"])}
    assert env["packages"]["torch"] != "not installed" and json.dumps(env)
