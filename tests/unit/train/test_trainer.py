"""The ``Trainer`` alone: per-epoch seeds, resume to the same weights and history, extra state, divergence."""

import pytest
import torch

from medtl.errors import TrainingDivergedError
from medtl.train.trainer import Trainer, epoch_seed


def _setup(state_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    trainer = Trainer(state_path, {"model": model, "optimizer": optimizer, "scheduler": scheduler}, optimizer,
                      scheduler)
    return model, trainer


def _epoch(model, trainer, crash_at=None):
    def run_epoch(epoch, seed):
        if epoch == crash_at:
            raise KeyboardInterrupt
        x = torch.randn(8, 3)  # drawn from the epoch's seed (the Trainer seeds torch before each epoch)
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        trainer.step(loss, epoch, lambda: ["c1"])
        trainer.extra["best"] = epoch
        return {"epoch": epoch, "loss": loss.item(), "seed": seed}
    return run_epoch


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights_and_history(tmp_path):
    model, trainer = _setup(tmp_path / "a" / "state.pt")
    reference = trainer.run(4, 7, _epoch(model, trainer))
    assert [h["seed"] for h in reference] == [epoch_seed(7, e) for e in range(4)]
    model2, trainer2 = _setup(tmp_path / "b" / "state.pt")
    with pytest.raises(KeyboardInterrupt):
        trainer2.run(4, 7, _epoch(model2, trainer2, crash_at=2))
    model3, trainer3 = _setup(tmp_path / "b" / "state.pt")
    assert trainer3.resume() and trainer3.start == 2 and trainer3.extra == {"best": 1}
    resumed = trainer3.run(4, 7, _epoch(model3, trainer3))
    assert resumed == reference
    assert torch.equal(model3.weight, model.weight) and torch.equal(model3.bias, model.bias)


def test_seconds_reach_the_caller_but_not_the_history(tmp_path):
    model, trainer = _setup(tmp_path / "state.pt")
    seen = []
    history = trainer.run(2, 0, _epoch(model, trainer), on_epoch=seen.append)
    assert all("seconds" in r for r in seen) and not any("seconds" in h for h in history)


def test_a_non_finite_objective_stops_before_the_step(tmp_path):
    model, trainer = _setup(tmp_path / "state.pt")
    before = model.weight.detach().clone()
    with pytest.raises(TrainingDivergedError, match="epoch 3 on a batch of cases c7"):
        trainer.step(torch.tensor(float("nan")), 2, lambda: ["c7"])
    assert torch.equal(model.weight, before)
