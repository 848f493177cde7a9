"""One task's logits of a multi-task model, as a model of its own (for Grad-CAM and occlusion)."""

from __future__ import annotations

import torch
from torch import nn


class TaskLogits(nn.Module):
    """``model(x)[task]`` with the model's own layer names (``backbone.layer3`` stays ``backbone.layer3``).

    The encoder and heads are shared with ``model`` (nothing is copied); ``stages`` and
    ``spec`` are the model's, so the default Grad-CAM layer is chosen the same way.
    """

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head
        object.__setattr__(self, "_model", model)  # not a submodule: its layers are registered above
        self.task, self.spec = task, model.spec
        # the view's mode is the model's: a fresh module is in training mode, and tools that save and restore
        # the mode of the module they are given (MONAI's GradCAM) would put the shared layers into training
        # mode (BatchNorm on batch statistics: predictions that depend on the batch)
        self.train(model.training)

    def stages(self):
        """The model's backbone stages."""
        return self._model.stages()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model(x)[self.task]
