"""``reweight``: importance-weighted fine-tuning toward unlabelled target images (covariate shift).

The weights are estimated once per fold, from the features of the model as it starts (the
pretrained encoder, frozen), so they do not chase the model being trained; each case's loss
is multiplied by its weight.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Batch, TrainingMethod


class Reweight(TrainingMethod):
    """Each training case's loss times its importance weight p_target(x) / p_source(x)."""

    name = "reweight"
    description = "importance-weighted loss toward unlabelled target images"
    supports_ddp = False
    supports_executor = False
    supports_patch_mode = False
    needs_target_images = True

    def __init__(self, config):
        super().__init__(config)
        self.weights: np.ndarray | None = None

    def setup(self, model, train_cases, targets, device, seed) -> dict:
        from ...domain.features import encoder_features
        from ...domain.importance import importance_weights

        adapt = self.config.adapt
        source = encoder_features(model, train_cases, device)
        target = encoder_features(model, targets, device)
        estimate = importance_weights(source, target, adapt.weight_clip, adapt.normalise_weights, seed,
                                      [c.group_key for c in train_cases], [t.group for t in targets])
        self.weights = np.asarray(estimate.weights, dtype=np.float32)
        return {"method": self.name, "n_target_images": len(targets), "weights": estimate.summary()}

    def losses(self, batch: Batch):
        logits = batch.model(batch.images).float()
        weights = torch.as_tensor(self.weights[batch.indices.cpu().numpy()], device=logits.device)
        per_case = torch.stack([batch.loss_fn(logits[i:i + 1], batch.targets[i:i + 1])
                                for i in range(len(batch.images))])
        task_loss = (weights * per_case).mean()
        return task_loss, task_loss, {}
