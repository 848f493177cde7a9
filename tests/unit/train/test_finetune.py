"""Each strategy trains exactly the parameters it should; L2-SP value and gradient are right."""

import pytest
import torch

import medtl
from medtl.train.finetune import L2SP, apply_strategy, parameter_groups


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def one_step(model, strategy, epoch=0, lr=0.1):
    torch.manual_seed(0)
    apply_strategy(model, strategy, epoch)
    model.train()
    optimizer = torch.optim.SGD(parameter_groups(model, strategy, lr), lr=lr)
    before = snapshot(model)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 64, 64)), torch.tensor([0, 1, 0, 1]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.fixture
def model():
    torch.manual_seed(1)
    return medtl.create_model("tiny-resnet", dims=2, num_classes=2)


def test_linear_trains_only_the_head_and_freezes_batchnorm_statistics(model):
    changed = one_step(model, "linear")
    assert changed == {"head.fc.weight", "head.fc.bias"}
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_full_trains_everything(model):
    changed = one_step(model, "full")
    assert {"backbone.conv1.weight", "backbone.layer1.0.conv1.weight", "backbone.bn1.running_mean",
            "head.fc.weight"} <= changed


@pytest.mark.parametrize("epoch,trainable", [
    (0, set()), (1, {"layer4"}), (2, {"layer3", "layer4"}), (5, {"stem", "layer1", "layer2", "layer3", "layer4"}),
])
def test_gradual_unfreezes_from_the_top(model, epoch, trainable):
    changed = one_step(model, "gradual", epoch)
    touched = {k.split(".")[1] for k in changed if k.startswith("backbone.")}
    touched = {"stem" if t in ("conv1", "bn1") else t for t in touched}
    assert touched == trainable
    assert {"head.fc.weight", "head.fc.bias"} <= changed


def test_discriminative_learning_rates_decay_by_depth(model):
    groups = parameter_groups(model, "discriminative", lr=1.0, lr_decay=0.5)
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("head", 1.0), ("layer4", 0.5), ("layer3", 0.25), ("layer2", 0.125), ("layer1", 0.0625), ("stem", 0.03125)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    changed = one_step(model, "discriminative")
    assert "backbone.conv1.weight" in changed


def test_l2sp_penalty_and_gradient(model):
    regulariser = L2SP(model, weight=0.3)
    assert regulariser.penalty(model).item() == 0.0
    with torch.no_grad():
        model.backbone.conv1.weight.add_(0.1)
        model.head.fc.weight.add_(5.0)  # the head is not penalised
    penalty = regulariser.penalty(model)
    expected = 0.5 * 0.3 * (0.1**2) * model.backbone.conv1.weight.numel()
    assert penalty.item() == pytest.approx(expected, rel=1e-4)
    model.zero_grad()
    penalty.backward()
    torch.testing.assert_close(model.backbone.conv1.weight.grad, torch.full_like(model.backbone.conv1.weight, 0.03))
    assert model.head.fc.weight.grad is None
    assert model.backbone.layer1[0].conv1.weight.grad.abs().max() == 0
