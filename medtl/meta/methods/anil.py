"""ANIL (Raghu et al., 2020): the inner loop adapts the head alone; the encoder learns in the outer loop.

The encoder runs once per support and query set (its features do not change in the inner
loop); the inner steps act on the head's linear layer.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from ..functional import inner_adapt, task_batch_norm, trainable
from .base import MetaMethod
from .maml import InnerRates


class ANIL(MetaMethod):
    """Almost no inner loop: head-only inner steps (second order through the head), encoder in the outer loop."""

    name = "anil"
    description = "ANIL: inner steps on the head only, encoder updated in the outer loop"

    def __init__(self, model: torch.nn.Module, meta):
        super().__init__(model, meta)
        self.rates = InnerRates(list(trainable(model.head.fc)), meta.inner_lr, meta.learn_inner_lr)

    def modules(self) -> list[torch.nn.Module]:
        return [self.rates]

    def adapt_and_predict(self, model, support_x, support_y, query_x, steps, training):
        head = model.head.fc
        with task_batch_norm(model):
            support, query = model.encode(support_x), model.encode(query_x)
        start = trainable(head)
        if not training:
            support, query = support.detach(), query.detach()
            start = {k: v.detach().requires_grad_() for k, v in start.items()}
        forward = lambda adapted, x: functional_call(head, adapted, (x,))  # noqa: E731
        adapted = inner_adapt(forward, start, support, support_y, steps, self.rates.as_dict(), True)
        return forward(adapted, query)
