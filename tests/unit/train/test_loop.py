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
    probs = np.stack(predict(model(), data, cfg, torch.device("cpu")))
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


def segmentation_cases(n=6, shape=(40, 44)):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        image = rng.normal(size=(1, *shape)).astype(np.float32)
        mask = np.zeros((1, *shape), np.int16)
        mask[0, 5 + i:12 + i, 30:38] = 1
        image[mask == 1] += 2.0
        case = PreparedCase(f"c{i}", f"p{i}", f"p{i}", None, image, mask, "")
        case.foreground = np.argwhere(mask[0] > 0).astype(np.int32)
        out.append(case)
    return out


def patch_config(**extra):
    return config(task="segmentation", **{"data.mode": "patch", "data.patch_size": 32, "data.patches_per_case": 3,
                                          **extra})


def test_patch_mode_trains_on_patches_and_resumes_exactly(tmp_path):
    data, cfg = segmentation_cases(), patch_config()
    loader = make_loader(data, cfg, seed=5)
    shapes = {tuple(images.shape[1:]) for images, _, _ in loader}
    assert shapes == {(1, 32, 32)} and sum(len(t) for _, t, _ in loader) == 18  # 6 cases x 3 patches

    def seg_model(seed=0):
        torch.manual_seed(seed)
        return medtl.create_model("tiny-resnet", dims=2, num_classes=2, task="segmentation")

    reference = seg_model()
    fit(reference, data, cfg, tmp_path / "ref" / "state.pt", seed=3)

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(seg_model(), data, cfg, tmp_path / "run" / "state.pt", seed=3, on_epoch=stop)
    resumed = seg_model(seed=99)
    fit(resumed, data, cfg, tmp_path / "run" / "state.pt", seed=3)
    assert all(torch.equal(v, weights(resumed)[k]) for k, v in weights(reference).items())
    maps = predict(resumed, data, cfg, torch.device("cpu"))  # whole images, by sliding window
    assert [m.shape for m in maps] == [(40, 44)] * 6


@pytest.mark.parametrize("n, batches", [(9, [4, 4]), (10, [4, 4, 2]), (1, [1]), (4, [4])])
def test_a_lone_last_training_item_waits_for_the_next_shuffle(n, batches):
    data, cfg = cases(n=n), config()
    assert [len(t) for _, t, _ in make_loader(data, cfg, 1)] == batches
    assert sum(len(t) for _, t, _ in make_loader(data, cfg, 0, train=False)) == n  # prediction sees every case


def test_patch_training_survives_a_one_voxel_bottleneck_with_an_odd_patch_count(tmp_path):
    data = segmentation_cases(n=3)
    cfg = patch_config(**{"data.patches_per_case": 3, "train.batch_size": 4, "train.epochs": 1})  # 9 = 4 + 4 + 1
    torch.manual_seed(0)
    model = medtl.create_model("tiny-resnet", dims=2, num_classes=2, task="segmentation")
    result = fit(model, data, cfg, tmp_path / "state.pt", seed=0)
    assert math.isfinite(result.history[0]["train_loss"])
