"""Provenance: order-free data hashes, and the keyed record of training images (by pixel content)."""

import json

from medtl.data.provenance import data_hash, environment, keyed_pixel_hash, training_overlap, write_training_images


def test_data_hash_ignores_order_and_sees_every_case():
    assert data_hash(["a", "b"]) == data_hash(["b", "a"]) != data_hash(["a", "b", "c"])


def test_training_overlap_finds_copies_by_pixels_network_input_and_dhash(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    from medtl.data.overlap import OverlapCounts
    from medtl.data.provenance import image_record

    rng = np.random.default_rng(0)
    images = [rng.random((1, 32, 32)).astype(np.float32) for _ in range(3)]
    cases = [SimpleNamespace(image=image, image_hash=f"pixels-of-{i}") for i, image in enumerate(images)]
    record = tmp_path / "training_images.json"
    write_training_images(record, cases)
    text = record.read_text()
    assert "pixels-of-0" not in text  # keyed: the record cannot confirm a known image
    from medtl.data.duplicates import difference_hash
    assert difference_hash(images[0]).hex() not in text  # masked: nor a known picture's dHash
    blurred = images[2].copy()
    blurred[0, :2, :2] += 0.05  # a few pixels changed: near-identical, not identical
    queries = [image_record(images[0], "pixels-of-0"),  # the same pixels
               image_record(images[1] + 0.0, "re-exported"),  # other pixels, identical network input
               image_record(blurred, "re-encoded"),  # possible copy
               image_record(rng.random((1, 32, 32)).astype(np.float32), "other")]
    assert training_overlap(record, queries) == OverlapCounts(pixels=1, network=1, near=1)
    assert training_overlap(tmp_path / "absent.json", queries) is None
    record.write_text(json.dumps({"images": ["x"]}))  # an older run hashed file bytes: not comparable
    assert training_overlap(record, queries) is None
    record.write_text(json.dumps({"hash": "pixels-v1", "images": [keyed_pixel_hash("pixels-of-0")]}))
    assert training_overlap(record, queries) == OverlapCounts(pixels=1, network=0, near=0)  # older runs: pixels only


def test_environment_records_versions_seed_and_data():
    env = environment(3, "cpu", ["x", "y"], {"scratch": []})
    assert env["seed"] == 3 and env["data"] == {"n_cases": 2, "sha256": data_hash(["x", "y"])}
    assert env["packages"]["torch"] != "not installed" and json.dumps(env)
