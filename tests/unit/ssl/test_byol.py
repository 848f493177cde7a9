"""BYOL: the target network is an exact exponential moving average of the online one."""

import copy

import pytest
import torch

from medtl.config import SSLConfig
from medtl.models import create_model
from medtl.ssl.byol import BYOL, target_momentum


def byol(seed: int = 0) -> BYOL:
    torch.manual_seed(seed)
    return BYOL(create_model("tiny-resnet", dims=2, num_classes=1, pretrained="none"), SSLConfig(ema_decay=0.9))


def test_momentum_schedule_runs_from_base_to_one():
    assert target_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert target_momentum(0.99, 100, 100) == pytest.approx(1.0)
    assert target_momentum(0.99, 50, 100) == pytest.approx(0.995)
    values = [target_momentum(0.9, s, 10) for s in range(11)]
    assert values == sorted(values)


@pytest.mark.parametrize("step,total", [(1, 10), (5, 10), (9, 10)])
def test_target_is_an_exact_ema_after_an_optimiser_step(step, total):
    model = byol().double()  # float64, so that 1e-7 measures the update rule, not float32 rounding
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    # start the target away from the online weights, so the average is visible
    with torch.no_grad():
        for p in model.target.parameters():
            p.add_(torch.randn_like(p))
    before = copy.deepcopy(model.target.state_dict())
    model.loss(torch.randn(4, 1, 32, 32, dtype=torch.float64), torch.randn(4, 1, 32, 32, dtype=torch.float64)
               ).backward()
    assert all(p.grad is None for p in model.target.parameters())  # the target is never trained
    optimizer.step()
    model.after_step(step, total)
    tau = target_momentum(0.9, step, total)
    online = dict(model.online().named_parameters())
    for name, target in model.target.named_parameters():
        expected = tau * before[name] + (1 - tau) * online[name].detach()
        torch.testing.assert_close(target, expected, atol=1e-7, rtol=0)
    online_buffers = dict(model.online().named_buffers())
    for name, buffer in model.target.named_buffers():
        assert torch.equal(buffer, online_buffers[name])


def test_loss_is_symmetric_in_the_views():
    model = byol().eval()
    a, b = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert float(model.loss(a, b)) == pytest.approx(float(model.loss(b, a)), abs=1e-6)
        assert 0 <= float(model.loss(a, b)) <= 8
