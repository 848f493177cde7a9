"""The leak guard of source stages: images of the target run are refused unless allowed, counted by pixels and
patient; the note says transductive (unlabelled pool) or optimistic (labelled source)."""

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest

from medtl.data.target_overlap import check_pool, target_overlap
from medtl.errors import InputError


@dataclass
class Item:
    image_hash: str
    patient_key: str

    @property
    def image(self):  # a distinct picture per pixel hash (the same hash: the same picture)
        seed = int(hashlib.sha256(self.image_hash.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).random((1, 16, 16)).astype(np.float32)


TARGET = [Item("img-a", "pat-1"), Item("img-b", "pat-2")]


def test_a_clean_pool_passes_silently():
    overlap = target_overlap([Item("img-x", "pat-9"), Item("img-y", "")], TARGET)
    assert overlap.n_cases == 0 and overlap.n_without_patient == 1
    assert check_pool(overlap, allow=False) is None


@pytest.mark.parametrize("pool,expected", [
    ([Item("img-a", "pat-9")], (1, 1, 0)),  # the same pixels under another patient id (a copy)
    ([Item("img-z", "pat-2")], (1, 0, 1)),  # another image of a target patient
    ([Item("img-b", "pat-2"), Item("img-q", "pat-1"), Item("img-r", "pat-8")], (2, 1, 2)),
    ([Item("img-a", "")], (1, 1, 0)),  # no patient key: pixels still count
])
def test_overlap_is_counted_by_pixels_and_by_patient_and_refused_by_default(pool, expected):
    overlap = target_overlap(pool, TARGET)
    assert (overlap.n_cases, overlap.by_image, overlap.by_patient) == expected
    with pytest.raises(InputError, match=rf"{expected[0]} source image\(s\) belong to the target run.*"
                                         "source.allow_target_images"):
        check_pool(overlap, allow=False)
    note = check_pool(overlap, allow=True)
    assert "transductive" in note and f"{expected[0]} source image(s)" in note
    assert "optimistic" in check_pool(overlap, allow=True, labelled=True)
