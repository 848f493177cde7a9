"""The gradient-reversal layer: identity forward, exactly -lambda times the gradient backward; the lambda ramp."""

import math

import pytest
import torch

from medtl.domain.gradient_reversal import dann_lambda, reverse_gradient


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
def test_forward_is_identity_and_backward_is_minus_lambda_times_the_gradient(lam):
    torch.manual_seed(0)
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, 7, dtype=torch.float64)
    y = reverse_gradient(x, lam)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.allclose(x.grad, -lam * upstream, atol=1e-6, rtol=0)


def test_reversal_sits_between_encoder_and_discriminator():
    # encoder weight w, discriminator weight v: d(v * grl(w * x))/dw = -lam * v * x, d/dv = w * x
    w = torch.tensor(2.0, requires_grad=True)
    v = torch.tensor(3.0, requires_grad=True)
    x = torch.tensor(5.0)
    (v * reverse_gradient(w * x, 0.5)).backward()
    assert w.grad.item() == pytest.approx(-0.5 * 3.0 * 5.0, abs=1e-6)
    assert v.grad.item() == pytest.approx(2.0 * 5.0, abs=1e-6)


def test_lambda_ramp_follows_the_dann_schedule():
    assert dann_lambda(0.0) == 0.0
    for p in (0.1, 0.5, 0.9):
        assert dann_lambda(p, 0.7, 10.0) == pytest.approx(0.7 * (2 / (1 + math.exp(-10 * p)) - 1), abs=1e-12)
    values = [dann_lambda(p / 20) for p in range(21)]
    assert values == sorted(values) and values[-1] == pytest.approx(1.0, abs=1e-4)
    assert dann_lambda(1.7) == dann_lambda(1.0)  # progress is clamped
