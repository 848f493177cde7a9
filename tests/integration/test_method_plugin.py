"""A training method defined and registered here (not in the package) runs as an arm of ``medtl cv``: it is
checkpointed, resumes bit-exactly, and is refused where it says it cannot run. Nothing in medtl names it."""

import json

import pytest
import torch
import yaml

from medtl.cli import main
from medtl.rundir import RunDir
from medtl.samples.sample_sets import write_radiograph_set
from medtl.train.methods import METHODS, register_method
from medtl.train.methods.base import TrainingMethod


class TemperedERM(TrainingMethod):
    """The task loss on logits divided by a learned temperature (a module of the method's own, with state)."""

    name = "tempered-test"
    supports_ddp = False
    calls = 0
    interrupt_at: int | None = None  # the call of ``losses`` that simulates a crash

    def setup(self, model, train_cases, targets, device, seed):
        self.temperature = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.constant_(self.temperature.weight, 1.0)
        return {"method": self.name, "start_temperature": 1.0}

    def modules(self):
        return [self.temperature]

    def losses(self, batch):
        TemperedERM.calls += 1
        if TemperedERM.calls == TemperedERM.interrupt_at:
            raise KeyboardInterrupt
        logits = batch.net(batch.images).float() / self.temperature.weight.abs().clamp_min(0.05)
        loss = batch.loss_fn(logits, batch.targets)
        return loss, loss, {"temperature": float(self.temperature.weight.detach().abs())}


@pytest.fixture
def tempered():
    register_method(TemperedERM)
    yield TemperedERM
    METHODS._items.pop(TemperedERM.name)
    TemperedERM.interrupt_at = None


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    data = write_radiograph_set(root / "data", n_patients=8, images_per_patient=2, size=32, seed=6)
    config = {"task": "classification", "data": {"manifest": str(data / "manifest.csv"), "dims": 2,
                                                 "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 3, "batch_size": 6, "lr": 0.01}, "cv": {"folds": 2, "bootstrap": 100},
              "compare": [{"name": "tempered", "set": {"train.method": "tempered-test"}}]}
    path = root / "cv.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_registered_method_runs_as_an_arm_and_is_compared_with_its_control(tempered, config_path, tmp_path):
    assert main(["cv", str(config_path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["arms"]) == {"scratch", "tempered"}
    assert [(c["a"], c["b"]) for c in metrics["comparisons"]] == [("tempered", "scratch")]
    done = RunDir(tmp_path / "run").fold("tempered", 0, 0).read_result()
    assert done.method == {"method": "tempered-test", "start_temperature": 1.0}
    temperatures = [h["temperature"] for h in done.history]
    assert len(temperatures) == 3 and temperatures[-1] != 1.0  # the method's module trained


@pytest.mark.heavy
def test_a_registered_method_resumes_bit_exactly_from_its_checkpoint(tempered, config_path, tmp_path):
    assert main(["cv", str(config_path), "--out", str(tmp_path / "ref"), "--quiet"]) == 0
    # crash in the second epoch of the first fold (8 training images, batch 6: 2 steps an epoch), after epoch 1's
    # checkpoint, then run again
    tempered.calls, tempered.interrupt_at = 0, 3
    assert main(["cv", str(config_path), "--out", str(tmp_path / "run"), "--quiet"]) == 130  # interrupted
    state = RunDir(tmp_path / "run").fold("tempered", 0, 0).state
    assert state.exists()
    assert torch.load(state, weights_only=True)["epoch"] == 0
    assert torch.load(state, weights_only=True)["method"]  # the method's module is in the checkpoint
    tempered.interrupt_at = None
    assert main(["cv", str(config_path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    reference = RunDir(tmp_path / "ref").fold("tempered", 0, 0).read_result()
    resumed = RunDir(tmp_path / "run").fold("tempered", 0, 0).read_result()
    assert resumed.history == reference.history and resumed.rows == reference.rows
    assert (tmp_path / "run" / "predictions.csv").read_text() == (tmp_path / "ref" / "predictions.csv").read_text()


def test_a_method_that_does_not_support_ddp_is_refused_under_torchrun(tempered, config_path, monkeypatch):
    from medtl.config import load_config
    from medtl.errors import ConfigError
    from medtl.workflows.validate import check_experiment

    config = load_config(config_path)
    check_experiment(config)  # runs in one process
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; rank 0 checks the experiment before any work
    with pytest.raises(ConfigError, match="'tempered-test' does not support training under torchrun"):
        check_experiment(config)
    tempered.supports_ddp = True
    try:
        check_experiment(config)  # the flag alone decides
    finally:
        tempered.supports_ddp = False
