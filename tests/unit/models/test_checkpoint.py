"""Checkpoints: weights round trip exactly, state files load weights-only, nothing half-written."""

import pickle

import pytest
import torch

import medtl
from medtl.errors import WeightsError
from medtl.models.checkpoint import load_training_state, load_weights, read_metadata, save_training_state, save_weights


def test_weights_round_trip_exactly_with_metadata(tmp_path):
    torch.manual_seed(0)
    a = medtl.create_model("tiny-resnet", dims=2, num_classes=3)
    b = medtl.create_model("tiny-resnet", dims=2, num_classes=3)
    save_weights(tmp_path / "m.safetensors", a, {**a.describe(), "selected_epoch": 4})
    load_weights(tmp_path / "m.safetensors", b)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["backbone"] == "tiny-resnet" and meta["num_classes"] == "3" and meta["selected_epoch"] == "4"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_training_state_that_wants_to_run_code_is_refused(tmp_path):
    save_training_state(tmp_path / "ok.pt", {"epoch": 1, "model": {"w": torch.ones(2)}})
    assert load_training_state(tmp_path / "ok.pt")["epoch"] == 1
    with open(tmp_path / "bad.pt", "wb") as f:
        pickle.dump({"epoch": Payload()}, f)
    with pytest.raises(WeightsError, match="delete it to restart"):
        load_training_state(tmp_path / "bad.pt")


def test_an_interrupted_wait_still_waits_for_the_write_in_flight(tmp_path, monkeypatch):
    import os
    import signal
    import threading
    import time

    import medtl.models.checkpoint as checkpoint

    written = []

    def slow_save(path, snapshot):
        time.sleep(1.0)
        written.append(path)

    monkeypatch.setattr(checkpoint, "save_training_state", slow_save)
    # a test runner started in the background inherits SIGINT ignored: this test needs Ctrl-C to be Ctrl-C
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    writer = checkpoint.BackgroundCheckpointWriter()
    writer.save(tmp_path / "state.pt", {})
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C while the training thread waits for the checkpoint
            writer.wait()
        writer.wait()  # the clean-up wait must not return before the file is written
    finally:
        signal.signal(signal.SIGINT, previous)
    assert written == [tmp_path / "state.pt"]
