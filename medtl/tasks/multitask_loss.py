"""The multi-task loss: each task's own loss on the cases that have its target, combined by a weighting.

A missing target is marked in the batch (class label ``-1``; a label map of ``-1``
everywhere) and that case is left out of the task's loss: it is never filled with a
guess such as "no lesion". A task with no target in a batch adds nothing to it.

Weightings: ``equal`` (every weight 1), ``fixed`` (``tasks[].weight``), ``uncertainty``
(Kendall, Gal and Cipolla 2018, their classification form: ``exp(-s_t) * L_t + s_t / 2``
with a learned ``s_t = log sigma_t^2`` per task; the effective weight is ``exp(-s_t)``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

MISSING = -1  # the target value of a case that lacks the task's target


def present(target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: which cases of the batch carry this task's target (labels or label maps)."""
    return (target.reshape(len(target), -1) >= 0).all(1)


class MultiTaskLoss(nn.Module):
    """``loss(logits: {task: tensor}, targets: {task: tensor}) -> scalar``; also records per-task losses.

    ``epoch_facts()`` returns (and resets) the epoch's mean loss and effective weight of
    each task, for the learning curves and the report.
    """

    def __init__(self, losses: dict[str, Callable], weighting: str, weights: dict[str, float]):
        super().__init__()
        self.losses, self.weighting = losses, weighting
        self.names = list(losses)
        self.fixed = {name: float(weights.get(name, 1.0)) if weighting == "fixed" else 1.0 for name in self.names}
        # learned log-variances (uncertainty weighting); zeros = weight 1 at the start
        self.log_vars = nn.Parameter(torch.zeros(len(self.names)), requires_grad=weighting == "uncertainty")
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def weights(self) -> dict[str, float]:
        """The effective weight of each task now."""
        if self.weighting == "uncertainty":
            return {name: float(torch.exp(-self.log_vars[i]).item()) for i, name in enumerate(self.names)}
        return dict(self.fixed)

    def forward(self, logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for i, name in enumerate(self.names):
            target = targets[name]
            keep = present(target)
            if not bool(keep.any()):
                continue
            output = logits[name].float()
            if not bool(keep.all()):  # only then copy the subset (a whole batch of label maps is large)
                output, target = output[keep], target[keep]
            value = self.losses[name](output, target)
            self._sums[name] = self._sums.get(name, 0.0) + float(value.detach()) * int(keep.sum())
            self._counts[name] = self._counts.get(name, 0) + int(keep.sum())
            if self.weighting == "uncertainty":
                term = torch.exp(-self.log_vars[i]) * value + 0.5 * self.log_vars[i]
            else:
                term = self.fixed[name] * value
            total = term if total is None else total + term
        if total is None:  # cannot happen with validated manifests (every case has a target)
            raise ValueError("a training batch holds no target of any task")
        return total

    def epoch_facts(self) -> dict[str, float]:
        """``{loss_<task>: mean over the epoch's cases with that target, weight_<task>: weight now}``; resets."""
        facts = {f"loss_{name}": self._sums[name] / self._counts[name] for name in self.names if self._counts.get(name)}
        facts.update({f"weight_{name}": value for name, value in self.weights().items()})
        self._sums, self._counts = {}, {}
        return facts
