"""``erm``: plain fine-tuning (empirical risk minimisation), the control arm of every other method."""

from __future__ import annotations

from .base import Batch, TrainingMethod


class ERM(TrainingMethod):
    """The task loss on the labelled batch, nothing else."""

    name = "erm"
    description = "plain fine-tuning: the task loss on each labelled batch"

    def losses(self, batch: Batch):
        logits = batch.net(batch.images)
        logits = {k: v.float() for k, v in logits.items()} if isinstance(logits, dict) else logits.float()
        loss = batch.loss_fn(logits, batch.targets)
        return loss, loss, {}
