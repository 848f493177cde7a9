"""NT-Xent against its formula; SimCLR and MICLe view pairs."""

import math

import numpy as np
import pytest
import torch

from medtl.config import SSLConfig
from medtl.models import create_model
from medtl.ssl.simclr import SimCLR, nt_xent
from medtl.ssl.views import ViewPairs, view_pipeline, view_units


def nt_xent_by_formula(a: np.ndarray, b: np.ndarray, t: float) -> float:
    """Chen et al. 2020, eq. 1, averaged over all 2N anchors, written out with loops in float64."""
    z = np.concatenate([a, b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(a)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        denominator = sum(math.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(z[i] @ z[positive] / t) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("n,dim,temperature", [(2, 4, 0.5), (5, 16, 0.1), (8, 32, 1.0), (16, 128, 0.2)])
def test_nt_xent_equals_the_formula_on_random_embeddings(n, dim, temperature):
    rng = np.random.default_rng(n * dim)
    a, b = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    got = nt_xent(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), temperature)
    assert float(got) == pytest.approx(nt_xent_by_formula(a, b, temperature), abs=1e-6)


def test_nt_xent_is_lower_when_pairs_agree():
    rng = np.random.default_rng(0)
    a = torch.tensor(rng.normal(size=(8, 16)))
    assert float(nt_xent(a, a + 0.01, 0.1)) < float(nt_xent(a, torch.tensor(rng.normal(size=(8, 16))), 0.1))


def test_simclr_loss_trains_the_encoder_and_the_projection_head():
    torch.manual_seed(0)
    model = SimCLR(create_model("tiny-resnet", dims=2, num_classes=1, pretrained="none"), SSLConfig())
    a, b = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    model.loss(a, b).backward()
    assert model.encoder.backbone.stages()[0][1][0].weight.grad is not None or any(
        p.grad is not None for p in model.encoder.backbone.parameters())
    assert all(p.grad is not None for p in model.projector.parameters())
    assert all(p.grad is None for p in model.encoder.head.parameters())  # the classification head is not used


class Image:
    def __init__(self, value: float):
        self.image = np.full((1, 16, 16), value, dtype=np.float32)


def test_units_group_images_by_patient_only_for_micle():
    keys = ["p1", "p2", "p1", "", "p3", "p2", ""]
    assert view_units(keys, False) == [[i] for i in range(7)]
    units = view_units(keys, True)
    assert sorted(map(sorted, units)) == [[0, 2], [1, 5], [3], [4], [6]]
    assert sorted(i for u in units for i in u) == list(range(7))  # every image in exactly one unit


def test_micle_pairs_are_two_different_images_of_one_patient():
    images = [Image(v) for v in (0.0, 1.0, 2.0, 10.0)]  # patient A: 0, 1, 2; patient B: 10
    units = view_units(["A", "A", "A", "B"], True)
    identity = lambda x: x  # noqa: E731 - views equal the images, so the pair shows which images were drawn
    pairs = ViewPairs(images, units, identity, seed=3)
    for seed in range(20):
        pairs.seed = seed
        for index in range(len(pairs)):
            first, second, _ = pairs[index]
            values = {float(first.mean()), float(second.mean())}
            members = {float(images[i].image.mean()) for i in units[index]}
            assert values <= members
            assert len(values) == min(2, len(members))  # two different images when the patient has two or more


def test_views_keep_shape_and_are_seeded():
    pipeline = view_pipeline((32, 32), SSLConfig())
    image = torch.rand(1, 32, 32)
    pipeline.set_random_state(seed=5)
    first = [pipeline(image) for _ in range(3)]
    pipeline.set_random_state(seed=5)
    again = [pipeline(image) for _ in range(3)]
    assert all(v.shape == (1, 32, 32) for v in first)
    assert all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(first, again))
    assert not torch.equal(torch.as_tensor(first[0]), torch.as_tensor(first[1]))
    volume = view_pipeline((8, 16, 16), SSLConfig())(torch.rand(1, 8, 16, 16))
    assert volume.shape == (1, 8, 16, 16)
