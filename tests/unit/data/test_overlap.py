"""Issue 27.2: one rule for "the same image": identical pixels, identical network input (re-exports), possible copies
(re-encodes); every other image is nothing."""

import numpy as np
import pytest

from medtl.config import load_config
from medtl.data.dataset import prepare_cases
from medtl.data.manifest import read_manifest
from medtl.data.overlap import OverlapCounts, copy_keys, image_keys, relations
from tests.copies import COPY_KINDS, original, write_copy, write_manifest, write_originals


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("copies")
    rows = write_originals(root, n=6)
    copies = []
    for k, kind in enumerate(COPY_KINDS):
        path = write_copy(original(k), kind, root / f"copy-{kind}")
        copies.append({"image": path.name, "label": 0, "patient_id": f"X{k}"})
    other = write_copy(original(999), "renamed", root / "unrelated")
    copies.append({"image": other.name, "label": 1, "patient_id": "X9"})
    config = load_config(None, ["data.image_size=64"])

    def prepare(name, manifest_rows):
        manifest = read_manifest(write_manifest(root / f"{name}.csv", manifest_rows), "classification")
        cases, skipped = prepare_cases(manifest, config, None, progress=False)
        assert not skipped
        return cases

    return prepare("originals", rows), prepare("copies", copies)


def test_each_kind_of_copy_is_named_by_its_strongest_evidence(prepared):
    originals, copies = prepared
    found = relations(image_keys(copies), image_keys(originals))
    expected = [*COPY_KINDS.values(), ""]
    assert [r.kind for r in found] == expected
    for k, relation in enumerate(found[:4]):
        assert relation.other == k  # the copy of original k is matched to original k
    assert OverlapCounts.of(found) == OverlapCounts(pixels=1, network=2, near=1)
    assert [r.is_copy for r in found] == [True, True, True, False, False]


def test_different_images_of_one_set_are_not_related(prepared):
    originals, _ = prepared
    keys = image_keys(originals)
    for i in range(len(originals)):
        others = [j for j in range(len(originals)) if j != i]
        assert relations(keys.subset([i]), keys.subset(others))[0].kind == ""


def test_the_strongest_relation_wins_when_one_image_has_several(prepared):
    originals, copies = prepared
    pool = image_keys([copies[1]])  # the +1 grey re-export of original 1
    target = image_keys([copies[3], originals[1]])  # a JPEG of original 3, then original 1 itself
    assert relations(pool, target)[0].kind == "network" and relations(pool, target)[0].other == 1
    assert np.array_equal(pool.dhashes[0], image_keys([originals[1]]).dhashes[0])


def test_copies_share_a_copy_key_and_nothing_else_does(prepared):
    originals, copies = prepared
    keys = copy_keys([*originals, *copies])
    n = len(originals)
    for k, kind in enumerate(COPY_KINDS):
        assert (keys[n + k] == keys[k]) == (COPY_KINDS[kind] in ("pixels", "network")), kind
    assert len(set(keys[:n])) == n and keys[-1] not in keys[:-1]
    assert keys[0] == originals[0].image_hash  # the key is the pixel hash of the group's first image
