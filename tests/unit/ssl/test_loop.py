"""The self-supervised loop: an interrupted run resumes to exactly the uninterrupted weights; NaN stops it."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medtl.config import SSLConfig, TrainConfig
from medtl.errors import TrainingDivergedError
from medtl.models import create_model
from medtl.ssl.byol import BYOL
from medtl.ssl.loop import fit_ssl, probe_curve
from medtl.ssl.probe import ProbeMonitor
from medtl.ssl.restoration import Restoration
from medtl.ssl.restore import Corruptor, RestorePairs
from medtl.ssl.simclr import SimCLR
from medtl.ssl.views import ViewPairs, view_pipeline, view_units

SSL = SSLConfig()
TRAIN = TrainConfig(epochs=2, batch_size=4, lr=1e-3, warmup_epochs=0, device="cpu", threads=1)


def images(n: int = 10, value=None):
    rng = np.random.default_rng(0)
    return [SimpleNamespace(image=rng.normal(size=(1, 32, 32)).astype(np.float32) if value is None else
                            np.full((1, 32, 32), value, np.float32), label=i % 2, patient_key=f"p{i // 2}",
                            case_id=f"case{i}") for i in range(n)]


def setup(method: str, pool):
    torch.manual_seed(0)
    encoder = create_model("tiny-resnet", dims=2, num_classes=1, pretrained="none",
                           task="segmentation" if method == "restore" else "classification")
    if method == "restore":
        corruptor = Corruptor((32, 32), SSL)
        return Restoration(encoder), RestorePairs(pool, corruptor), corruptor
    pipeline = view_pipeline((32, 32), SSL)
    objective = SimCLR(encoder, SSL) if method == "simclr" else BYOL(encoder, SSL)
    return objective, ViewPairs(pool, view_units([c.patient_key for c in pool], method == "byol"), pipeline, 0), \
        pipeline


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["simclr", "byol", "restore"])
def test_a_resumed_run_ends_with_the_uninterrupted_weights(method, tmp_path):
    pool = images()
    objective, dataset, randomised = setup(method, pool)
    history = fit_ssl(objective, dataset, randomised, TRAIN, tmp_path / "a" / "state.pt", seed=3)
    straight = {k: v.clone() for k, v in objective.state_dict().items()}

    objective, dataset, randomised = setup(method, pool)

    def stop(record):
        raise Interrupt

    with pytest.raises(Interrupt):
        fit_ssl(objective, dataset, randomised, TRAIN, tmp_path / "b" / "state.pt", seed=3, on_epoch=stop)
    objective, dataset, randomised = setup(method, pool)  # a fresh process: new objects, state from disk
    resumed = fit_ssl(objective, dataset, randomised, TRAIN, tmp_path / "b" / "state.pt", seed=3)
    for key, value in objective.state_dict().items():
        assert torch.equal(value, straight[key]), key
    assert [h["train_loss"] for h in resumed] == [h["train_loss"] for h in history]


def test_the_probe_is_scored_before_training_and_on_schedule(tmp_path):
    pool = images(12)
    objective, dataset, randomised = setup("simclr", pool)
    probe = ProbeMonitor(pool, "logreg", every=2, epochs=3)
    train = TRAIN.model_copy(update={"epochs": 3})
    history = fit_ssl(objective, dataset, randomised, train, tmp_path / "state.pt", seed=0, probe=probe)
    assert [h["epoch"] for h in history if "probe_auc" in h] == [-1, 1, 2]
    scored = [h for h in history if "probe_auc" in h and not np.isnan(h["probe_auc"])]
    assert probe_curve(history) == [(h["epoch"] + 1, h["probe_auc"]) for h in scored]  # epoch 0 = before


def test_a_non_finite_loss_stops_with_the_cases_named(tmp_path):
    pool = images(8, value=float("nan"))
    objective, dataset, randomised = setup("restore", pool)
    with pytest.raises(TrainingDivergedError, match="case"):
        fit_ssl(objective, dataset, randomised, TRAIN, tmp_path / "state.pt", seed=0)
