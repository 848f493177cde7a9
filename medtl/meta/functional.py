"""The functional pieces every gradient-based meta-learner shares: adapted tensors, inner steps, BatchNorm.

Parameters are handled as ``{name: tensor}`` dicts and run through ``torch.func.functional_call``;
an inner step is ``torch.func.grad`` of the support loss. Second order (MAML): the step stays
in the outer graph; first order (FOMAML): its gradient is detached.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch.func import functional_call, grad
from torch.nn.modules.batchnorm import _BatchNorm


def trainable(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``{name: parameter}`` of the model's trainable parameters whose names start with ``prefix``."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefix)}


def cross_entropy_of(forward: Callable[[dict, torch.Tensor], torch.Tensor]):
    """``loss(adapted, x, y)``: the cross-entropy of ``forward(adapted, x)``."""
    def loss(adapted: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(forward(adapted, x), y)
    return loss


def model_forward(model: torch.nn.Module) -> Callable[[dict, torch.Tensor], torch.Tensor]:
    """``forward(adapted, x)``: the model with the adapted tensors in place of its own."""
    return lambda adapted, x: functional_call(model, adapted, (x,))


def inner_adapt(forward, start: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, steps: int,
                lrs: dict[str, torch.Tensor | float], second_order: bool) -> dict[str, torch.Tensor]:
    """``steps`` gradient steps of the support loss from ``start``: ``theta - lr * grad`` per tensor."""
    loss = cross_entropy_of(forward)
    adapted = dict(start)
    for _ in range(steps):
        grads = grad(loss)(adapted, x, y)
        adapted = {k: v - lrs[k] * (grads[k] if second_order else grads[k].detach()) for k, v in adapted.items()}
    return adapted


@contextmanager
def differentiable_twice(enabled: bool = True):
    """Attention by its plain math kernel: the fused CPU/GPU kernels have no second derivative, which a
    second-order meta-gradient through a transformer needs."""
    if not enabled:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


@contextmanager
def task_batch_norm(model: torch.nn.Module):
    """BatchNorm with each batch's own statistics (per task) and no running-statistics update.

    An inner loop under ``torch.func.grad`` may not update buffers in place, and a task's
    support set should not leak into the next task's normalisation; the running statistics
    are recomputed on the source images once meta-training ends (``refresh_batch_norm``).
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.track_running_stats, m.training) for m in layers]
    for layer in layers:
        layer.track_running_stats = False
        layer.train()
    try:
        yield
    finally:
        for layer, (tracking, training) in zip(layers, saved):
            layer.track_running_stats = tracking
            layer.train(training)


@torch.no_grad()
def refresh_batch_norm(model: torch.nn.Module, batches) -> int:
    """Recompute every BatchNorm's running mean/variance as the average over ``batches`` (cumulative moving
    average); returns the number of layers refreshed."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    model.train()
    for batch in batches:
        model(batch)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    model.train(training)
    return len(layers)
