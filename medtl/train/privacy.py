"""DP-SGD: per-image gradients (``torch.func``), clipped, summed, Gaussian noise, with Poisson-sampled batches
and Opacus's RDP accountant (the ``privacy`` extra).

Each step: every image ``i`` of the batch gets its own gradient ``g_i`` (``vmap`` of ``grad``
over single images), scaled to norm at most ``C`` (``max_grad_norm``); the step's gradient is
``(sum_i clip(g_i) + N(0, (sigma C)^2)) / (q n)`` (``q`` the sampling rate, ``n`` the training
images: Opacus's convention). Batches are Poisson samples (each image in with probability
``q``), which is what the accountant's bound assumes. The accountant's state travels in the
epoch checkpoint, so a resumed fold reports the same epsilon.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from ..errors import ConfigError, MedtlError
from ..models.group_norm import has_batch_norm


def require_opacus():
    """Opacus's RDP accountant, or an error naming the extra."""
    try:
        from opacus.accountants import RDPAccountant
    except ImportError as exc:
        raise MedtlError("privacy.dp needs Opacus for its privacy accountant: pip install 'medtl[privacy]'") from exc
    return RDPAccountant


def check_private_model(model: torch.nn.Module, backbone: str) -> None:
    """Refuse a network with BatchNorm: one image's gradient would depend on the other images of its batch."""
    if has_batch_norm(model):
        raise ConfigError(f"privacy.dp: backbone '{backbone}' (or its head) uses BatchNorm, which mixes the images "
                          "of a batch, so no image's gradient can be clipped on its own; use a GroupNorm variant "
                          f"(model.backbone: {backbone.split('-gn')[0]}-gn; `medtl models` lists them)")


def noise_for(privacy, sample_rate: float, steps: int, delta: float) -> float:
    """``privacy.noise_multiplier``, or the smallest one that keeps ``steps`` steps at ``privacy.epsilon``."""
    if privacy.noise_multiplier is not None:
        return float(privacy.noise_multiplier)
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=privacy.epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant="rdp"))


def per_image_gradients(model: torch.nn.Module, loss_fn, images: torch.Tensor, targets: torch.Tensor
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``({parameter name: (batch, *shape)}, (batch,) losses)``: each image's gradient of its own loss, in one
    vectorised pass."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def one(weights, image, target):
        logits = functional_call(model, (weights, buffers), (image.unsqueeze(0),))
        loss = loss_fn(logits if logits.dtype == torch.float64 else logits.float(), target.unsqueeze(0))
        return loss, loss.detach()

    per_image = grad(one, has_aux=True)
    if targets.dim() > 1:  # label maps: MONAI's Dice loss one-hots in place, which vmap cannot batch: one at a time
        results = [per_image(params, image, target) for image, target in zip(images, targets)]
        return ({n: torch.stack([g[n] for g, _ in results]) for n in params},
                torch.stack([loss for _, loss in results]))
    return vmap(per_image, in_dims=(None, 0, 0), randomness="different")(params, images, targets)


def clip_and_sum(gradients: dict[str, torch.Tensor], max_norm: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``(sum over images of each gradient scaled to norm <= max_norm, the per-image norms before clipping)``."""
    flat = torch.stack([g.reshape(len(g), -1).pow(2).sum(1) for g in gradients.values()]).sum(0).sqrt()
    factor = (max_norm / (flat + 1e-6)).clamp(max=1.0)
    return {n: torch.einsum("i,i...->...", factor.to(g.dtype), g) for n, g in gradients.items()}, flat


class PrivateGradients:
    """The DP-SGD step of one fold: sampling, clipped noisy gradients, the accountant (a checkpoint part)."""

    def __init__(self, privacy, n_images: int, batch_size: int, epochs: int):
        if n_images < 1:
            raise ConfigError("privacy.dp: the fold has no training image")
        accountant = require_opacus()
        self.privacy = privacy
        self.n = n_images
        self.sample_rate = min(1.0, batch_size / n_images)
        self.steps_per_epoch = max(1, math.ceil(n_images / batch_size))
        self.delta = privacy.delta if privacy.delta is not None else 1.0 / n_images
        self.sigma = noise_for(privacy, self.sample_rate, self.steps_per_epoch * epochs, self.delta)
        self.accountant = accountant()

    def batches(self, seed: int) -> list[np.ndarray]:
        """One epoch of Poisson samples: each image in each step's batch with probability ``q`` (may be empty)."""
        rng = np.random.default_rng(seed)
        return [np.flatnonzero(rng.random(self.n) < self.sample_rate) for _ in range(self.steps_per_epoch)]

    def apply(self, model: torch.nn.Module, loss_fn, images: torch.Tensor | None, targets, generator: torch.Generator
              ) -> tuple[torch.Tensor, dict]:
        """Set ``p.grad`` of every trainable parameter to the step's private gradient; returns the batch's summed
        loss (for the epoch's mean; 0 for an empty batch) and the step's facts."""
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        clip = self.privacy.max_grad_norm
        if images is not None and len(images):
            gradients, losses = per_image_gradients(model, loss_fn, images, targets)
            summed, norms = clip_and_sum(gradients, clip)
            clipped, total = float((norms > clip).float().mean()), losses.sum()
        else:  # an empty Poisson batch: the step is noise alone (and still counts)
            summed, clipped = {n: torch.zeros_like(p) for n, p in trainable.items()}, 0.0
            total = torch.zeros(())
        scale = self.sample_rate * self.n
        for name, parameter in trainable.items():
            noise = torch.normal(0.0, self.sigma * clip, parameter.shape, generator=generator,
                                 device="cpu").to(parameter.device, parameter.dtype)
            parameter.grad = (summed[name] + noise) / scale
        self.accountant.step(noise_multiplier=self.sigma, sample_rate=self.sample_rate)
        return total, {"clipped_share": clipped}

    def spent(self) -> dict:
        """What this fold's training spent: ``epsilon`` at ``delta``, and the mechanism's settings."""
        steps = sum(count for _, _, count in self.accountant.history)
        epsilon = self.accountant.get_epsilon(self.delta) if steps and self.sigma > 0 else math.inf
        return {"epsilon": float(epsilon), "delta": self.delta, "noise_multiplier": self.sigma,
                "max_grad_norm": self.privacy.max_grad_norm, "sample_rate": self.sample_rate, "steps": steps,
                "training_images": self.n}

    def state_dict(self) -> dict:
        return {"history": [list(h) for h in self.accountant.history], "sigma": self.sigma}

    def load_state_dict(self, state: dict) -> None:
        self.accountant.history = [tuple(h) for h in state.get("history", [])]
        self.sigma = float(state.get("sigma", self.sigma))
