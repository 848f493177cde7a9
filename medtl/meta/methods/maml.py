"""MAML (Finn et al., 2017): second-order gradient through the inner steps on every parameter.

With ``meta.learn_inner_lr`` each parameter tensor has its own learnable inner learning rate
(Meta-SGD with one rate per tensor, as in MAML++), optimised in the outer loop.
"""

from __future__ import annotations

import torch

from ..functional import differentiable_twice, inner_adapt, model_forward, task_batch_norm, trainable
from .base import MetaMethod


class InnerRates(torch.nn.Module):
    """One inner learning rate per adapted tensor (learnable, or a fixed buffer)."""

    def __init__(self, names: list[str], lr: float, learn: bool):
        super().__init__()
        self.names = names
        values = torch.full((len(names),), float(lr))
        if learn:
            self.rates = torch.nn.Parameter(values)
        else:
            self.register_buffer("rates", values)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{tensor name: its rate}``."""
        return {name: self.rates[i] for i, name in enumerate(self.names)}


class MAML(MetaMethod):
    """Inner steps on every parameter, second-order outer gradient."""

    name = "maml"
    description = "MAML: inner steps on all parameters, second-order meta-gradient"
    second_order = True
    adapted_prefix = ""  # which parameters the inner loop adapts ("" = all)

    def __init__(self, model: torch.nn.Module, meta):
        super().__init__(model, meta)
        names = list(trainable(model, self.adapted_prefix))
        self.rates = InnerRates(names, meta.inner_lr, meta.learn_inner_lr)

    def modules(self) -> list[torch.nn.Module]:
        return [self.rates]

    def adapt_and_predict(self, model, support_x, support_y, query_x, steps, training):
        forward = model_forward(model)
        start = trainable(model, self.adapted_prefix)
        with task_batch_norm(model), differentiable_twice(self.second_order and training):
            if not training:  # evaluation: the adapted tensors need no graph back to the meta-parameters
                start = {k: v.detach().requires_grad_() for k, v in start.items()}
            adapted = inner_adapt(forward, start, support_x, support_y, steps, self.rates.as_dict(),
                                  self.second_order and training)
            return forward(adapted, query_x)
