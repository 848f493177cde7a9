"""The gradient-reversal layer of DANN (Ganin & Lempitsky 2015) and its lambda ramp."""

from __future__ import annotations

import math

import torch


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lam * grad, None


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by ``-lam`` in the backward pass.

    The discriminator after it learns to tell domains apart, while the encoder before it
    receives the opposite gradient and learns features the discriminator cannot separate.
    """
    return _ReverseGradient.apply(x, float(lam))


def dann_lambda(progress: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """``lambda_max * (2 / (1 + exp(-gamma * p)) - 1)`` for training progress ``p`` in [0, 1].

    Starts at 0 (the discriminator's gradient is noise before the features mean anything)
    and ramps up to ``lambda_max``; the schedule of Ganin et al. (2016).
    """
    p = min(max(float(progress), 0.0), 1.0)
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)
