"""Domain adaptation inside the training loop: DANN's adversarial step and importance-weighted losses.

``DomainTraining`` is what ``fit`` is given for an adaptation arm. For ``dann`` each
training batch is joined by an equally large batch of unlabelled target images (drawn
with replacement, seeded per epoch, so a resumed fit draws what the uninterrupted one
would); one encoder pass serves both, the task loss sees only the labelled images, and
the domain discriminator sees all features through the gradient-reversal layer. For
``reweight`` each case's loss is multiplied by its importance weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from ..config import AdaptConfig
from ..domain.discriminator import DomainDiscriminator, domain_loss
from ..domain.gradient_reversal import dann_lambda
from ..domain.targets import TargetImage


class _TargetDataset(torch.utils.data.Dataset):
    def __init__(self, images: list[TargetImage], augment=None):
        self.images, self.augment = images, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index].image
        sample = {"image": torch.from_numpy(np.array(image, dtype=np.float32))}
        if self.augment is not None:
            sample = self.augment(sample)
        return torch.as_tensor(sample["image"]).float()


@dataclass
class DomainTraining:
    """An adaptation arm's extra training state: target images, discriminator or per-case weights."""

    settings: AdaptConfig
    targets: list[TargetImage] = field(default_factory=list)  # dann: unlabelled target images
    sample_weights: np.ndarray | None = None  # reweight: one weight per training case (fit's case order)
    discriminator: DomainDiscriminator | None = None

    @classmethod
    def dann(cls, settings: AdaptConfig, targets: list[TargetImage], feature_channels: int) -> "DomainTraining":
        """DANN with a fresh discriminator (its initial weights come from the fold's seeded torch RNG)."""
        if not targets:
            raise ValueError("DANN needs at least one target image")
        return cls(settings, list(targets), None, DomainDiscriminator(feature_channels, settings.discriminator_width))

    @classmethod
    def reweight(cls, settings: AdaptConfig, weights: np.ndarray) -> "DomainTraining":
        """Importance weights, one per training case."""
        return cls(settings, [], np.asarray(weights, dtype=np.float32), None)

    @property
    def method(self) -> str:
        """``dann`` or ``reweight``."""
        return "dann" if self.discriminator is not None else "reweight"

    def parameter_groups(self, lr: float) -> list[dict]:
        """The discriminator's parameters for the optimiser (none for re-weighting)."""
        return [] if self.discriminator is None else [{"params": list(self.discriminator.parameters()), "lr": lr}]

    def to(self, device: torch.device) -> None:
        """Move the discriminator to the training device."""
        if self.discriminator is not None:
            self.discriminator.to(device)

    def train(self, mode: bool = True) -> None:
        """Train/eval mode of the discriminator (dropout)."""
        if self.discriminator is not None:
            self.discriminator.train(mode)

    def state_dict(self) -> dict:
        """What a training checkpoint keeps besides the model (the discriminator)."""
        return {} if self.discriminator is None else {"discriminator": self.discriminator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict`` output on resume."""
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])

    def target_batches(self, seed: int, batches: int, batch_size: int, augment, workers: int
                       ) -> Iterator[torch.Tensor] | None:
        """``batches`` batches of target images for one epoch (``None`` for re-weighting)."""
        if self.discriminator is None:
            return None
        generator = torch.Generator().manual_seed(seed)
        sampler = torch.utils.data.RandomSampler(self.targets, replacement=True, num_samples=batches * batch_size,
                                                 generator=generator)
        if augment is not None:
            augment.set_random_state(seed=seed)
        return iter(torch.utils.data.DataLoader(_TargetDataset(self.targets, augment), batch_size=batch_size,
                                                sampler=sampler, num_workers=workers))

    def losses(self, model, images: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor, loss_fn: Callable,
               target_images: torch.Tensor | None, progress: float) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``(task loss, loss to minimise, facts)`` of one batch; ``progress`` in [0, 1] drives DANN's lambda."""
        if self.discriminator is None:
            logits = model(images).float()
            weights = torch.as_tensor(self.sample_weights[indices.cpu().numpy()], device=logits.device)
            per_case = torch.stack([loss_fn(logits[i:i + 1], targets[i:i + 1]) for i in range(len(images))])
            task_loss = (weights * per_case).mean()
            return task_loss, task_loss, {}
        lam = dann_lambda(progress, self.settings.lambda_max, self.settings.lambda_gamma)
        target_images = target_images.to(images.device)
        logits, features = model.forward_with_features(torch.cat([images, target_images]), n_head=len(images))
        task_loss = loss_fn(logits.float(), targets)
        adversarial, accuracy = domain_loss(self.discriminator, features[: len(images)], features[len(images):], lam)
        return task_loss, task_loss + adversarial, {"domain_loss": float(adversarial.detach()), "domain_accuracy": accuracy,
                                                    "lambda": lam}


def prepare_domain_training(settings: AdaptConfig, model, train_cases: list, targets: list[TargetImage],
                            device: torch.device, seed: int) -> tuple[DomainTraining | None, dict]:
    """The adaptation of one fold, and the facts the report gives about it (``None`` for plain fine-tuning).

    Re-weighting estimates its weights once, from the features of the model as it starts
    (the pretrained encoder, frozen), so the weights do not chase the model being trained.
    """
    if settings.method == "none":
        return None, {}
    facts: dict = {"method": settings.method, "n_target_images": len(targets)}
    if settings.method == "dann":
        return DomainTraining.dann(settings, targets, model.spec.feature_channels[-1]), facts
    from ..domain.features import encoder_features
    from ..domain.importance import importance_weights

    source = encoder_features(model, train_cases, device)
    target = encoder_features(model, targets, device)
    estimate = importance_weights(source, target, settings.weight_clip, settings.normalise_weights, seed)
    facts["weights"] = estimate.summary()
    return DomainTraining.reweight(settings, estimate.weights), facts
