"""Adaptation inside the training loop: DANN trains on target images and resumes exactly; re-weighting with equal
weights is plain fine-tuning; per-case weights change the loss as the formula says."""

import numpy as np
import pytest
import torch

import medtl
from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.domain.targets import TargetImage
from medtl.train.adaptation import DomainTraining, prepare_domain_training
from medtl.train.loop import fit


def cases(n=12, size=24, shift=0.0):
    rng = np.random.default_rng(0)
    return [PreparedCase(f"c{i}", f"p{i}", f"p{i}", i % 2, (rng.normal(size=(1, size, size)) + shift)
                         .astype(np.float32), None, "", image_hash=f"h{i}") for i in range(n)]


def targets(n=7, size=24):
    rng = np.random.default_rng(1)
    return [TargetImage(rng.normal(2.0, 1.5, size=(1, size, size)).astype(np.float32), f"t{i}") for i in range(n)]


def config(*extra):
    return load_config(None, ["data.image_size=24", "train.epochs=3", "train.batch_size=4", "train.device=cpu",
                              *extra])


def model(seed=0):
    torch.manual_seed(seed)
    return medtl.create_model("tiny-resnet", dims=2, num_classes=2)


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def dann(cfg, seed=0):
    torch.manual_seed(seed)
    return DomainTraining.dann(cfg.adapt, targets(), model().spec.feature_channels[-1])


def test_dann_trains_with_a_domain_loss_and_resumes_exactly(tmp_path):
    cfg = config("adapt.method=dann")
    reference = model()
    result = fit(reference, cases(), cfg, tmp_path / "ref" / "state.pt", 3, adaptation=dann(cfg))
    assert all({"domain_loss", "domain_accuracy", "lambda"} <= set(h) for h in result.history)
    lambdas = [h["lambda"] for h in result.history]
    assert lambdas == sorted(lambdas) and 0 < lambdas[0] < lambdas[-1] < 1

    def stop(record):
        if record["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model(), cases(), cfg, tmp_path / "run" / "state.pt", 3, on_epoch=stop, adaptation=dann(cfg))
    resumed = model(seed=99)
    fit(resumed, cases(), cfg, tmp_path / "run" / "state.pt", 3, adaptation=dann(cfg, seed=99))
    assert all(torch.equal(v, weights(resumed)[k]) for k, v in weights(reference).items())


def test_dann_changes_the_encoder_and_plain_training_ignores_targets(tmp_path):
    cfg = config("adapt.method=dann")
    plain, adapted = model(), model()
    fit(plain, cases(), config(), tmp_path / "a" / "state.pt", 3)
    fit(adapted, cases(), cfg, tmp_path / "b" / "state.pt", 3, adaptation=dann(cfg))
    assert not torch.equal(weights(plain)["backbone.conv1.weight"], weights(adapted)["backbone.conv1.weight"])


def test_equal_importance_weights_are_plain_fine_tuning(tmp_path):
    plain, weighted = model(), model()
    fit(plain, cases(), config(), tmp_path / "a" / "state.pt", 3)
    fit(weighted, cases(), config("adapt.method=reweight"), tmp_path / "b" / "state.pt", 3,
        adaptation=DomainTraining.reweight(config().adapt, np.ones(12)))
    for key, value in weights(plain).items():
        assert torch.allclose(value.float(), weights(weighted)[key].float(), atol=1e-5), key


def test_weighted_loss_is_the_mean_of_weight_times_case_loss():
    m = model()
    images = torch.randn(4, 1, 24, 24)
    labels = torch.tensor([0, 1, 1, 0])
    w = np.array([0.5, 2.0, 1.0, 0.25, 9.0], dtype=np.float32)
    training = DomainTraining.reweight(config().adapt, w)
    loss_fn = torch.nn.CrossEntropyLoss()
    indices = torch.tensor([0, 1, 2, 3])
    m.eval()
    task_loss, objective, _ = training.losses(m, images, labels, indices, loss_fn, None, 0.0)
    per_case = torch.nn.functional.cross_entropy(m(images), labels, reduction="none")
    assert task_loss.item() == pytest.approx(float((torch.as_tensor(w[:4]) * per_case).mean()), abs=1e-6)
    assert objective is task_loss


def test_reweight_estimates_weights_from_the_starting_encoder():
    cfg = config("adapt.method=reweight")
    training, facts = prepare_domain_training(cfg.adapt, model(), cases(), targets(), torch.device("cpu"), 0)
    assert training.method == "reweight" and len(training.sample_weights) == 12
    assert facts["weights"]["n"] == 12 and 0 < facts["weights"]["ess"] <= 12
    assert training.sample_weights.mean() == pytest.approx(1.0, abs=1e-5)
    none, nothing = prepare_domain_training(config().adapt, model(), cases(), [], torch.device("cpu"), 0)
    assert none is None and nothing == {}


def test_segmentation_dann_runs_the_decoder_on_labelled_images_only(tmp_path):
    torch.manual_seed(0)
    seg = medtl.create_model("tiny-resnet", dims=2, num_classes=2, task="segmentation")
    seg.eval()
    x = torch.randn(5, 1, 30, 26)  # sizes the encoder cannot tile: padded and cropped back
    logits, features = seg.forward_with_features(x, n_head=2)
    assert logits.shape == (2, 2, 30, 26) and features.shape == (5, seg.spec.feature_channels[-1])
    assert torch.allclose(logits, seg(x[:2]), atol=1e-5)
    assert torch.allclose(features, seg.encode(x), atol=1e-5)
    rng = np.random.default_rng(0)
    data = [PreparedCase(f"c{i}", f"p{i}", f"p{i}", None, rng.normal(size=(1, 24, 24)).astype(np.float32),
                        (rng.random((1, 24, 24)) > 0.8).astype(np.int16), "") for i in range(8)]
    cfg = load_config(None, ["task=segmentation", "data.image_size=24", "train.epochs=1", "train.batch_size=4",
                             "train.device=cpu", "adapt.method=dann"])
    training = DomainTraining.dann(cfg.adapt, targets(), seg.spec.feature_channels[-1])
    result = fit(seg, data, cfg, tmp_path / "state.pt", 0, adaptation=training)
    assert np.isfinite(result.history[0]["domain_loss"])
