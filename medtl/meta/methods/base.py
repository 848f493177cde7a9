"""The ``MetaMethod`` interface: a loss per episode (meta-training) and a solver per episode (few-shot use)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class MetaMethod(ABC):
    """A way to learn from episodes. Subclasses set ``name`` and implement ``adapt_and_predict``.

    ``adapt_and_predict(model, support_x, support_y, query_x, steps, training)`` returns the
    query logits after the method's adaptation to the support set; meta-training minimises
    their cross-entropy, averaged over ``meta.tasks_per_step`` episodes per outer step.
    """

    name: str = ""
    description: str = ""
    uses_head = True  # protonet classifies by distance to prototypes: the head is not used

    def __init__(self, model: torch.nn.Module, meta):
        self.meta = meta

    def modules(self) -> list[torch.nn.Module]:
        """Trainable modules of the method itself (Meta-SGD's inner learning rates): optimised and checkpointed."""
        return []

    @abstractmethod
    def adapt_and_predict(self, model: torch.nn.Module, support_x: torch.Tensor, support_y: torch.Tensor,
                          query_x: torch.Tensor, steps: int, training: bool) -> torch.Tensor:
        """Query logits ``(n_query, ways)`` after adapting to the support set (``steps`` inner steps)."""

    def episode_loss(self, model, support_x, support_y, query_x, query_y) -> tuple[torch.Tensor, float]:
        """``(query cross-entropy to minimise, query accuracy)`` of one training episode."""
        logits = self.adapt_and_predict(model, support_x, support_y, query_x, self.meta.inner_steps, training=True)
        accuracy = float((logits.argmax(1) == query_y).float().mean())
        return torch.nn.functional.cross_entropy(logits, query_y), accuracy

    def state_dict(self) -> dict:
        """What an epoch checkpoint keeps besides the model and optimiser."""
        return {f"module{i}": m.state_dict() for i, m in enumerate(self.modules())}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict`` output on resume."""
        for i, module in enumerate(self.modules()):
            module.load_state_dict(state[f"module{i}"])
