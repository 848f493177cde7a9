"""Training methods inside the loop (adaptation methods here; the plugin contract in test_method_plugin.py): DANN trains on target images and resumes exactly; re-weighting with equal
weights is plain fine-tuning; per-case weights change the loss as the formula says."""

import numpy as np
import pytest
import torch

import medtl
from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.domain.targets import TargetImage
from medtl.train.loop import fit
from medtl.train.methods import METHODS, build_method
from medtl.train.methods.base import Batch
from medtl.train.methods.dann import DANN
from medtl.train.methods.reweight import Reweight


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
    method = DANN(cfg)
    method.setup(model(), cases(), targets(), torch.device("cpu"), seed)
    return method


def reweight(cfg, w):
    method = Reweight(cfg)
    method.weights = np.asarray(w, dtype=np.float32)
    return method


def test_dann_trains_with_a_domain_loss_and_resumes_exactly(tmp_path):
    cfg = config("adapt.method=dann")
    reference = model()
    result = fit(reference, cases(), cfg, tmp_path / "ref" / "state.pt", 3, method=dann(cfg))
    assert all({"domain_loss", "domain_accuracy", "lambda"} <= set(h) for h in result.history)
    lambdas = [h["lambda"] for h in result.history]
    assert lambdas == sorted(lambdas) and 0 < lambdas[0] < lambdas[-1] < 1

    def stop(record):
        if record["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model(), cases(), cfg, tmp_path / "run" / "state.pt", 3, on_epoch=stop, method=dann(cfg))
    resumed = model(seed=99)
    fit(resumed, cases(), cfg, tmp_path / "run" / "state.pt", 3, method=dann(cfg, seed=99))
    assert all(torch.equal(v, weights(resumed)[k]) for k, v in weights(reference).items())


def test_dann_changes_the_encoder_and_plain_training_ignores_targets(tmp_path):
    cfg = config("adapt.method=dann")
    plain, adapted = model(), model()
    fit(plain, cases(), config(), tmp_path / "a" / "state.pt", 3)
    fit(adapted, cases(), cfg, tmp_path / "b" / "state.pt", 3, method=dann(cfg))
    assert not torch.equal(weights(plain)["backbone.conv1.weight"], weights(adapted)["backbone.conv1.weight"])


def test_equal_importance_weights_are_plain_fine_tuning(tmp_path):
    plain, weighted = model(), model()
    fit(plain, cases(), config(), tmp_path / "a" / "state.pt", 3)
    fit(weighted, cases(), config("adapt.method=reweight"), tmp_path / "b" / "state.pt", 3,
        method=reweight(config("adapt.method=reweight"), np.ones(12)))
    for key, value in weights(plain).items():
        assert torch.allclose(value.float(), weights(weighted)[key].float(), atol=1e-5), key


def test_weighted_loss_is_the_mean_of_weight_times_case_loss():
    m = model()
    images = torch.randn(4, 1, 24, 24)
    labels = torch.tensor([0, 1, 1, 0])
    w = np.array([0.5, 2.0, 1.0, 0.25, 9.0], dtype=np.float32)
    training = reweight(config("adapt.method=reweight"), w)
    loss_fn = torch.nn.CrossEntropyLoss()
    indices = torch.tensor([0, 1, 2, 3])
    m.eval()
    task_loss, objective, _ = training.losses(Batch(m, m, images, labels, indices, loss_fn, 0.0, 0))
    per_case = torch.nn.functional.cross_entropy(m(images), labels, reduction="none")
    assert task_loss.item() == pytest.approx(float((torch.as_tensor(w[:4]) * per_case).mean()), abs=1e-6)
    assert objective is task_loss


def test_reweight_estimates_weights_from_the_starting_encoder():
    cfg = config("adapt.method=reweight")
    training = build_method(cfg)
    facts = training.setup(model(), cases(), targets(), torch.device("cpu"), 0)
    assert training.name == "reweight" and len(training.weights) == 12 and facts["method"] == "reweight"
    assert facts["weights"]["n"] == 12 and 0 < facts["weights"]["ess"] <= 12
    assert training.weights.mean() == pytest.approx(1.0, abs=1e-5)
    plain = build_method(config())
    assert plain.name == "erm" and plain.setup(model(), cases(), [], torch.device("cpu"), 0) == {}


def test_adapt_method_maps_onto_train_method_and_conflicts_are_refused():
    assert config("adapt.method=dann").method_name == "dann"
    assert config("train.method=reweight").adapt.method == "reweight"
    assert config().method_name == "erm" and sorted(METHODS.names()) == ["dann", "erm", "fedavg", "fedprox", "reweight"]
    with pytest.raises(Exception, match="train.method"):
        config("adapt.method=dann", "train.method=reweight")


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
    training = DANN(cfg)
    training.setup(seg, data, targets(), torch.device("cpu"), 0)
    result = fit(seg, data, cfg, tmp_path / "state.pt", 0, method=training)
    assert np.isfinite(result.history[0]["domain_loss"])


def test_capability_flags_are_checked_in_one_place_with_the_method_and_the_fix_named(monkeypatch):
    from medtl.errors import ConfigError, UnknownNameError
    from medtl.train.methods import check_support
    from medtl.train.methods.base import TrainingMethod

    class WholeImagesOnly(TrainingMethod):
        name = "whole-images-only"
        supports_patch_mode = supports_executor = False

    METHODS._load()
    monkeypatch.setitem(METHODS._items, WholeImagesOnly.name, WholeImagesOnly)
    resize = config("train.method=whole-images-only")
    check_support("a", resize)  # whole images, one process: fine
    with pytest.raises(ConfigError, match="'whole-images-only' does not support run.executor: dask; use run.exec"):
        check_support("a", resize, executor="dask")
    patch = load_config(None, ["train.method=whole-images-only", "data.mode=patch", "data.patch_size=[32,32]"])
    with pytest.raises(ConfigError, match="arm 'a'.*native-extent patch mode"):
        check_support("a", patch)
    check_support("a", config(), ddp=True, executor="ray")  # erm runs everywhere
    with pytest.raises(ConfigError, match="does not support training under torchrun"):
        check_support("a", config("adapt.method=dann"), ddp=True)
    with pytest.raises(UnknownNameError, match="did you mean 'reweight'"):
        check_support("a", config("train.method=reweigth"))
