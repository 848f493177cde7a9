"""The domain discriminator's loss, and pooled encoder features that do not depend on the batch."""

import numpy as np
import pytest
import torch

import medtl
from medtl.domain.discriminator import DomainDiscriminator, domain_loss
from medtl.domain.features import encoder_features


def test_the_encoder_side_receives_the_reversed_domain_gradient():
    torch.manual_seed(0)
    disc = DomainDiscriminator(6, width=8).eval()  # no dropout: two passes see the same network
    source, target = torch.randn(4, 6, requires_grad=True), torch.randn(3, 6, requires_grad=True)
    loss, accuracy = domain_loss(disc, source, target, lam=0.7)
    loss.backward()
    reversed_grad = source.grad.clone()
    plain_source = source.detach().clone().requires_grad_(True)
    logits = disc.net(torch.cat([plain_source, target.detach()])).squeeze(1)
    truth = torch.cat([torch.zeros(4), torch.ones(3)])
    torch.nn.functional.binary_cross_entropy_with_logits(logits, truth).backward()
    assert torch.allclose(reversed_grad, -0.7 * plain_source.grad, atol=1e-6)
    assert 0.0 <= accuracy <= 1.0


def test_accuracy_counts_source_as_0_and_target_as_1():
    disc = DomainDiscriminator(1, width=8).eval()
    with torch.no_grad():
        for layer in disc.net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        disc.net[-1].bias.fill_(5.0)  # always says "target"
    _, accuracy = domain_loss(disc, torch.zeros(3, 1), torch.zeros(1, 1), lam=1.0)
    assert accuracy == pytest.approx(0.25)


def test_a_cases_features_do_not_depend_on_the_other_images_in_its_batch():
    torch.manual_seed(0)
    model = medtl.create_model("tiny-resnet", dims=2, num_classes=2)
    model.train()
    rng = np.random.default_rng(0)

    class Image:
        def __init__(self):
            self.image = rng.normal(size=(1, 32, 32)).astype(np.float32)

    images = [Image() for _ in range(5)]
    together = encoder_features(model, images, torch.device("cpu"), batch_size=5)
    alone = np.concatenate([encoder_features(model, [i], torch.device("cpu")) for i in images])
    assert together.shape == (5, model.spec.feature_channels[-1])
    assert np.allclose(together, alone, atol=1e-5)
    assert model.training  # the caller's mode is restored
