"""The training loop: deterministic for a seed, and a resumed fit equals an uninterrupted one."""

import math

import numpy as np
import pytest
import torch

import medtl
from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.train.loop import epoch_seed, fit, make_loader, predict, warmup_cosine


def cases(n=12, size=24):
    rng = np.random.default_rng(0)
    return [PreparedCase(f"c{i}", f"p{i}", f"p{i}", i % 2, rng.normal(size=(1, size, size)).astype(np.float32),
                         None, "") for i in range(n)]


def config(**extra):
    overrides = ["data.image_size=24", "train.epochs=3", "train.batch_size=4", "train.device=cpu"]
    return load_config(None, overrides + [f"{k}={v}" for k, v in extra.items()])


def model(seed=0):
    torch.manual_seed(seed)
    return medtl.create_model("tiny-resnet", dims=2, num_classes=2)


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_warmup_cosine_rises_then_decays_to_zero():
    factor = warmup_cosine(100, 10)
    values = [factor(s) for s in range(101)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:])) and values[100] == pytest.approx(0.0)
    assert epoch_seed(3, 4) == epoch_seed(3, 4) != epoch_seed(3, 5)


def test_same_seed_gives_the_same_weights(tmp_path):
    data, cfg = cases(), config()
    a, b = model(), model()
    fit(a, data, cfg, tmp_path / "a" / "state.pt", seed=7)
    fit(b, data, cfg, tmp_path / "b" / "state.pt", seed=7)
    assert all(torch.equal(v, weights(b)[k]) for k, v in weights(a).items())


def test_resume_from_an_epoch_checkpoint_continues_exactly(tmp_path):
    data, cfg = cases(), config()
    reference = model()
    fit(reference, data, cfg, tmp_path / "ref" / "state.pt", seed=3)

    stopped = model()
    checkpoints = []

    def keep(record):
        if record["epoch"] == 0:
            checkpoints.append(True)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(stopped, data, cfg, tmp_path / "run" / "state.pt", seed=3, on_epoch=keep)
    assert checkpoints and (tmp_path / "run" / "state.pt").exists()
    resumed = model(seed=99)  # a fresh process: the weights come from the checkpoint
    result = fit(resumed, data, cfg, tmp_path / "run" / "state.pt", seed=3)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert all(torch.equal(v, weights(resumed)[k]) for k, v in weights(reference).items())


def test_predict_returns_probabilities_in_case_order_and_the_loader_covers_every_case():
    data, cfg = cases(n=10), config()
    probs = predict(model(), data, cfg, torch.device("cpu"))
    assert probs.shape == (10, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    seen = [int(y) for _, targets, _ in make_loader(data, cfg, 0, train=False) for y in targets]
    assert seen == [c.label for c in data]
    shuffled = [len(t) for _, t, _ in make_loader(data, cfg, 1)]
    assert sum(shuffled) == 10 and not math.isnan(float(probs.mean()))


def test_a_non_finite_loss_stops_the_fold_and_names_the_cases(tmp_path):
    from medtl.errors import TrainingDivergedError

    data = cases()
    data[5].image[:] = np.nan  # slipped past every guard: the loop is the last line of defence
    with pytest.raises(TrainingDivergedError, match="epoch 1") as error:
        fit(model(), data, config(), tmp_path / "state.pt", seed=0)
    assert "c5" in str(error.value)
