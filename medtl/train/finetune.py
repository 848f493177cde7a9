"""Fine-tuning strategies: which parameters train, at which learning rate.

* ``linear``: backbone frozen (BatchNorm statistics too); only the head trains.
* ``full``: everything trains at one learning rate.
* ``gradual``: head first, then one more backbone stage from the top every
  ``unfreeze_every`` epochs (ULMFiT-style gradual unfreezing).
* ``discriminative``: everything trains; the head at ``lr``, each backbone stage
  below it at ``lr * lr_decay**depth`` (layer-wise learning-rate decay).
* ``lora``, ``bitfit``, ``norm-only`` (``peft.py``): the backbone frozen like ``linear``,
  plus low-rank adapters, the biases, or the normalisation layers' affine parameters.
* L2-SP (``finetune.l2sp`` > 0) composes with any strategy: a penalty
  ``alpha/2 * ||w - w_pretrained||^2`` over backbone weights, head excluded.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..models.build import MedtlModel
from .peft import PEFT_STRATEGIES, enable_tuned

STRATEGIES = ("linear", "full", "gradual", "discriminative", *PEFT_STRATEGIES)


def frozen_stages(model: MedtlModel, strategy: str, epoch: int = 0, unfreeze_every: int = 1) -> set[str]:
    """Backbone stages that are frozen under ``strategy`` at ``epoch`` (0-based)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown finetune.strategy '{strategy}'; choose from {', '.join(STRATEGIES)}")
    names = [name for name, _ in model.stages()]
    if strategy == "linear" or strategy in PEFT_STRATEGIES:
        return set(names)
    if strategy == "gradual":
        unfrozen = epoch // max(1, unfreeze_every)
        return set(names[: max(0, len(names) - unfrozen)])
    return set()


def apply_strategy(model: MedtlModel, strategy: str, epoch: int = 0, unfreeze_every: int = 1) -> set[str]:
    """Freeze what the strategy says for this epoch; returns the frozen stage names."""
    frozen = frozen_stages(model, strategy, epoch, unfreeze_every)
    if frozen != model.frozen_stages:
        model.set_frozen(frozen)
        if strategy in PEFT_STRATEGIES:
            enable_tuned(model, strategy)
    return frozen


def parameter_groups(model: MedtlModel, strategy: str, lr: float, lr_decay: float = 0.5) -> list[dict]:
    """Optimizer parameter groups. Frozen parameters are included (gradual unfreezing
    needs them later); they receive no gradient while frozen, so they do not move."""
    if strategy != "discriminative":
        return [{"params": list(model.parameters()), "lr": lr, "name": "all"}]
    groups = [{"params": list(model.head.parameters()), "lr": lr, "name": "head"}]
    for depth, (name, modules) in enumerate(reversed(model.stages()), start=1):
        params = [p for module in modules for p in module.parameters()]
        groups.append({"params": params, "lr": lr * lr_decay**depth, "name": name})
    return groups


class L2SP:
    """L2-SP regulariser (Li et al. 2018): pulls backbone weights toward their starting values."""

    def __init__(self, model: MedtlModel, weight: float):
        self.weight = weight
        self.reference = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}

    def penalty(self, model: MedtlModel) -> torch.Tensor:
        total = torch.zeros((), device=next(model.parameters()).device)
        if self.weight == 0:
            return total
        for name, parameter in model.backbone.named_parameters():
            if parameter.requires_grad:
                total = total + (parameter - self.reference[name].to(parameter.device)).pow(2).sum()
        return 0.5 * self.weight * total
