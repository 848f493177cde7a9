"""The source-stage leak guard's notes: unchecked, allowed (transductive or optimistic), pixels-only checks."""

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest

from medtl.config import load_config
from medtl.errors import InputError
from medtl.workflows.source_guard import guard_notes


@dataclass
class Item:
    image_hash: str
    patient_key: str

    @property
    def image(self):  # a distinct picture per pixel hash (the same hash: the same picture)
        seed = int(hashlib.sha256(self.image_hash.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).random((1, 16, 16)).astype(np.float32)


TARGET = [Item("a", "p1"), Item("b", "p2")]


def config(allow: bool):
    return load_config(None, ["source.task=simclr", f"source.allow_target_images={str(allow).lower()}"])


def test_without_a_target_run_the_notes_say_nothing_was_checked():
    assert "not checked" in guard_notes(config(False), [Item("a", "p1")], None, labelled=False)[0]


@pytest.mark.parametrize("labelled,word", [(False, "transductive"), (True, "optimistic")])
def test_an_allowed_overlap_is_reported_and_a_refused_one_names_the_switch(labelled, word):
    source = [Item("a", "p9"), Item("z", "")]
    with pytest.raises(InputError, match="source.allow_target_images"):
        guard_notes(config(False), source, TARGET, labelled)
    notes = guard_notes(config(True), source, TARGET, labelled)
    assert word in notes[0] and "1 source image(s) belong" in notes[0]
    assert "1 source image(s) have no patient id" in notes[1]


def test_a_clean_source_set_adds_no_note():
    assert guard_notes(config(False), [Item("x", "p7")], TARGET, labelled=True) == []
