"""Prototypical networks (Snell et al., 2017): a class is the mean of its support embeddings, a query's
logits are the negative squared Euclidean distances to the prototypes. No inner loop; the head is unused."""

from __future__ import annotations

import torch

from ..functional import task_batch_norm
from .base import MetaMethod


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """``(ways, dim)``: the mean embedding of each class's support images."""
    return torch.stack([embeddings[labels == c].mean(0) for c in range(ways)])


def prototype_logits(queries: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``-||q - c||^2`` for every query and prototype: ``(n_query, ways)``."""
    return -torch.cdist(queries, centres).pow(2)


class ProtoNet(MetaMethod):
    """Nearest prototype in the encoder's pooled feature space."""

    name = "protonet"
    description = "prototypical networks: nearest class mean of support embeddings (squared Euclidean)"
    uses_head = False

    def adapt_and_predict(self, model, support_x, support_y, query_x, steps, training):
        with task_batch_norm(model), torch.set_grad_enabled(training):
            support, query = model.encode(support_x), model.encode(query_x)
        ways = int(support_y.max()) + 1
        return prototype_logits(query, prototypes(support, support_y, ways))
