"""A head set from prototypes classifies exactly as the nearest-prototype rule (same softmax)."""

from types import SimpleNamespace

import numpy as np
import torch

from medtl.meta.methods.protonet import prototype_logits, prototypes
from medtl.meta.prototype_head import prototype_head
from medtl.models import create_model


def test_prototype_head_gives_the_prototypical_networks_probabilities():
    rng = np.random.default_rng(0)
    cases = [SimpleNamespace(image=rng.normal(size=(1, 16, 16)).astype(np.float32), label=i % 3) for i in range(9)]
    cases.append(SimpleNamespace(image=rng.normal(size=(1, 16, 16)).astype(np.float32), label=None))  # unlabelled
    torch.manual_seed(0)
    model = create_model("tiny-resnet", dims=2, num_classes=3, pretrained="none").double().eval()
    facts = prototype_head(model.float(), cases, torch.device("cpu"))
    assert "9 training images" in facts["prototype_head"]
    model = model.double()
    images = torch.from_numpy(np.stack([c.image for c in cases[:9]])).double()
    queries = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        features = model.encode(images)
        centres = prototypes(features, torch.tensor([c.label for c in cases[:9]]), 3)
        want = torch.softmax(prototype_logits(model.encode(queries), centres), 1)
        got = torch.softmax(model(queries), 1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_a_class_without_training_images_leaves_the_head_alone():
    cases = [SimpleNamespace(image=np.zeros((1, 16, 16), np.float32), label=0) for _ in range(3)]
    model = create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none")
    before = model.head.fc.weight.clone()
    facts = prototype_head(model, cases, torch.device("cpu"))
    assert "not set" in facts["prototype_head"] and torch.equal(model.head.fc.weight, before)
