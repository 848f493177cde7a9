"""``dann``: domain-adversarial training (Ganin et al. 2016) against unlabelled target images.

Each training batch is joined by an equally large batch of unlabelled target images (drawn
with replacement, seeded per epoch, so a resumed fit draws what the uninterrupted one would);
one encoder pass serves both, the task loss sees only the labelled images, and the domain
discriminator sees all features through the gradient-reversal layer.
"""

from __future__ import annotations

import numpy as np
import torch

from ...domain.discriminator import DomainDiscriminator, domain_loss
from ...domain.gradient_reversal import dann_lambda
from .base import Batch, TrainingMethod


class _TargetDataset(torch.utils.data.Dataset):
    def __init__(self, images: list, augment=None):
        self.images, self.augment = images, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        sample = {"image": torch.from_numpy(np.array(self.images[index].image, dtype=np.float32))}
        if self.augment is not None:
            sample = self.augment(sample)
        return torch.as_tensor(sample["image"]).float()


class DANN(TrainingMethod):
    """Task loss plus the adversarial domain loss (lambda ramps up with training progress)."""

    name = "dann"
    description = "domain-adversarial training against unlabelled target images (gradient reversal)"
    supports_ddp = False  # the target batches would need the same partitioning as the labelled ones
    supports_executor = False
    supports_patch_mode = False
    needs_target_images = True

    def __init__(self, config):
        super().__init__(config)
        self.targets: list = []
        self.discriminator: DomainDiscriminator | None = None
        self._batches = None

    def setup(self, model, train_cases, targets, device, seed) -> dict:
        if not targets:
            raise ValueError("DANN needs at least one target image")
        self.targets = list(targets)
        # initial weights from the fold's seeded torch RNG
        self.discriminator = DomainDiscriminator(model.spec.feature_channels[-1],
                                                 self.config.adapt.discriminator_width)
        return {"method": self.name, "n_target_images": len(self.targets)}

    def modules(self) -> list[torch.nn.Module]:
        return [self.discriminator] if self.discriminator is not None else []

    def start_epoch(self, seed: int, steps: int, batch_size: int, workers: int, augment) -> None:
        from ...transforms.presets import augment_pipeline

        augment = augment_pipeline(self.config.data, False)  # target images have no mask
        generator = torch.Generator().manual_seed(seed + 1)
        sampler = torch.utils.data.RandomSampler(self.targets, replacement=True, num_samples=steps * batch_size,
                                                 generator=generator)
        if augment is not None:
            augment.set_random_state(seed=seed + 1)
        self._batches = iter(torch.utils.data.DataLoader(_TargetDataset(self.targets, augment),
                                                         batch_size=batch_size, sampler=sampler,
                                                         num_workers=workers))

    def losses(self, batch: Batch):
        adapt = self.config.adapt
        target_images = next(self._batches)[: len(batch.images)].to(batch.images.device)
        lam = dann_lambda(batch.progress, adapt.lambda_max, adapt.lambda_gamma)
        logits, features = batch.model.forward_with_features(torch.cat([batch.images, target_images]),
                                                             n_head=len(batch.images))
        task_loss = batch.loss_fn(logits.float(), batch.targets)
        adversarial, accuracy = domain_loss(self.discriminator, features[: len(batch.images)],
                                            features[len(batch.images):], lam)
        return task_loss, task_loss + adversarial, {"domain_loss": float(adversarial.detach()),
                                                    "domain_accuracy": accuracy, "lambda": lam}

    def state_dict(self) -> dict:
        return {"discriminator": self.discriminator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
