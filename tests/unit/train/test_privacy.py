"""DP-SGD against explicit computations: per-image gradients, the clipping bound, the accountant's epsilon,
plain SGD when there is no noise and no clipping, resume, and the BatchNorm refusal."""

import math

import numpy as np
import pytest
import torch

from medtl.config import PrivacyConfig, load_config
from medtl.data.dataset import PreparedCase
from medtl.errors import ConfigError
from medtl.models import create_model
from medtl.train.loop import fit
from medtl.train.privacy import PrivateGradients, clip_and_sum, per_image_gradients

pytest.importorskip("opacus")


def cases(n=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [PreparedCase(f"c{i}", f"p{i // 2}", f"p{i // 2}", i % 2, rng.normal(size=(1, size, size)).astype(np.float32),
                         None, "") for i in range(n)]


def model64():
    torch.manual_seed(0)
    return create_model("tiny-resnet-gn", dims=2, num_classes=2, pretrained="none").double()


def batch(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 16, 16, generator=g, dtype=torch.float64), torch.tensor([0, 1] * (n // 2))


def test_per_image_gradients_equal_a_loop_over_single_images_and_clipping_bounds_each():
    model, (images, labels) = model64(), batch()
    loss_fn = torch.nn.CrossEntropyLoss()
    gradients, losses = per_image_gradients(model, loss_fn, images, labels)
    for i in range(len(images)):
        model.zero_grad()
        loss = loss_fn(model(images[i:i + 1]), labels[i:i + 1])
        loss.backward()
        assert float(losses[i]) == pytest.approx(float(loss.detach()), abs=1e-10)
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(gradients[name][i], parameter.grad, atol=1e-6, rtol=1e-6, msg=name)
    bound = 0.05
    summed, norms = clip_and_sum(gradients, bound)
    flat = torch.cat([g.reshape(len(images), -1) for g in gradients.values()], 1)
    torch.testing.assert_close(norms, flat.norm(dim=1))
    assert bool((norms > bound).all()), "the bound must bite for this test to mean anything"
    for i in range(len(images)):  # each image's contribution to the sum has norm <= the bound
        single = {n: g[i:i + 1] for n, g in gradients.items()}
        clipped, _ = clip_and_sum(single, bound)
        assert float(torch.cat([c.reshape(-1) for c in clipped.values()]).norm()) <= bound * (1 + 1e-6)


def test_without_noise_or_clipping_the_private_step_is_the_plain_full_batch_gradient():
    model, (images, labels) = model64(), batch()
    loss_fn = torch.nn.CrossEntropyLoss()
    private = PrivateGradients(PrivacyConfig(dp=True, noise_multiplier=0.0, max_grad_norm=1e9), len(images),
                               batch_size=len(images), epochs=1)  # sampling rate 1: every image in every step
    assert private.sample_rate == 1.0 and len(private.batches(0)[0]) == len(images)
    private.apply(model, loss_fn, images, labels, torch.Generator().manual_seed(0))
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    loss_fn(model(images), labels).backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(got[name], parameter.grad, atol=1e-6, rtol=1e-6, msg=name)


def test_reported_epsilon_is_the_accountants_value_for_the_steps_taken(tmp_path):
    from opacus.accountants import RDPAccountant

    train = cases()
    config = load_config(None, ["model.backbone=tiny-resnet-gn", "model.pretrained=none", "data.image_size=16",
                                "train.epochs=3", "train.batch_size=4", "privacy.dp=true", "privacy.epsilon=5",
                                "data.augment.enabled=false"])
    torch.manual_seed(0)
    result = fit(create_model("tiny-resnet-gn", dims=2, num_classes=2, pretrained="none"), train, config,
                 tmp_path / "state.pt", 0)
    spent = result.privacy
    assert spent["steps"] == 3 * math.ceil(12 / 4) and spent["sample_rate"] == pytest.approx(4 / 12)
    reference = RDPAccountant()
    for _ in range(spent["steps"]):
        reference.step(noise_multiplier=spent["noise_multiplier"], sample_rate=spent["sample_rate"])
    assert spent["epsilon"] == pytest.approx(reference.get_epsilon(1 / 12), rel=1e-9)
    assert spent["epsilon"] <= 5.0 + 0.05 and spent["delta"] == pytest.approx(1 / 12)


def test_a_resumed_private_fold_equals_the_uninterrupted_one_and_reports_the_same_epsilon(tmp_path):
    train = cases()
    base = ["model.backbone=tiny-resnet-gn", "model.pretrained=none", "data.image_size=16", "train.batch_size=4",
            "privacy.dp=true", "privacy.noise_multiplier=0.8"]

    def run(epochs, state):
        torch.manual_seed(0)
        model = create_model("tiny-resnet-gn", dims=2, num_classes=2, pretrained="none")
        result = fit(model, train, load_config(None, [*base, f"train.epochs={epochs}"]), state, 0)
        return model, result

    whole, whole_result = run(3, tmp_path / "a.pt")
    run(1, tmp_path / "b.pt")
    resumed, resumed_result = run(3, tmp_path / "b.pt")
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())
    assert resumed_result.privacy == whole_result.privacy


def test_a_network_with_batch_norm_is_refused_naming_the_group_norm_variant(tmp_path):
    config = load_config(None, ["model.backbone=tiny-resnet", "model.pretrained=none", "data.image_size=16",
                                "privacy.dp=true", "privacy.epsilon=8"])
    with pytest.raises(ConfigError, match="tiny-resnet-gn"):
        fit(create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none"), cases(), config,
            tmp_path / "s.pt", 0)
    with pytest.raises(ConfigError, match="exactly one of privacy.epsilon"):
        load_config(None, ["privacy.dp=true", "privacy.epsilon=8", "privacy.noise_multiplier=1"])


def test_per_image_gradients_of_a_3d_segmentation_network_equal_single_image_gradients():
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    model = create_model("tiny-resnet-gn", dims=3, num_classes=2, pretrained="none", task="segmentation").double()
    images = torch.randn(2, 1, 16, 16, 16, dtype=torch.float64)
    masks = (torch.rand(2, 1, 16, 16, 16) > 0.7).long()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    gradients, _ = per_image_gradients(model, loss_fn, images, masks)
    for i in range(2):
        model.zero_grad()
        loss_fn(model(images[i:i + 1]), masks[i:i + 1]).backward()
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(gradients[name][i], parameter.grad, atol=1e-6, rtol=1e-6, msg=name)
