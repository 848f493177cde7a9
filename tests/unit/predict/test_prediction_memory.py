"""Issue 35.3: sliding-window prediction of a volume holds about three float32 copies of it (not one set of
probabilities per fold model, stacked again), the ensemble is the members' mean, and the guard counts what is held.
The memory itself is measured by benchmarks/predict_memory.py (per extra voxel, against the previous code)."""

import numpy as np
import torch

from medtl.config import load_config
from medtl.io.guards import prediction_copies, prediction_problem
from medtl.models import create_model
from medtl.predict.engine import _member_probabilities


def _setup():
    config = load_config(None, ["task=segmentation", "data.dims=3", "data.mode=patch", "data.patch_size=[16,32,32]"])
    torch.manual_seed(0)
    models = [create_model("tiny-resnet", dims=3, num_classes=3, in_channels=1, task="segmentation",
                           pretrained="none").eval() for _ in range(3)]
    return config, models, torch.rand(1, 1, 24, 48, 40)


def test_the_in_place_ensemble_is_the_mean_of_the_members_and_members_are_kept_only_when_asked():
    config, models, image = _setup()
    kept = _member_probabilities(models, image, torch.device("cpu"), config)[""]
    lean = _member_probabilities(models, image, torch.device("cpu"), config, keep_members=lambda name: False)[""]
    assert kept.members.shape == (3, 1, 3, 24, 48, 40) and lean.members is None
    np.testing.assert_allclose(lean.mean, kept.members.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(lean.mean.sum(axis=1), 1.0, atol=1e-5)


def test_the_guard_refuses_what_would_not_fit_and_names_the_arithmetic(monkeypatch):
    monkeypatch.setenv("MEDTL_MAX_VOLUME_MB", "100")
    assert prediction_problem((64, 128, 128), (64, 128, 128), 2) is None  # 3 copies of 4 MB + the original grid
    problem = prediction_problem((256, 512, 512), (256, 512, 512), 2, kept_members=5)
    assert "over the 100 MB limit" in problem and f"{prediction_copies(2, 5)} float32 copies" in problem
    assert "--fold K" in problem
