"""The ``TrainingMethod`` interface: what a training method may change in the supervised loop.

The ``Trainer``-driven loop (``medtl.train.loop.fit``) owns epochs, seeds, resume, checkpoints,
the divergence check and AMP; a method decides what one batch's loss is (``losses``), may add
trainable modules (``parameter_groups``), fold-level set-up (``setup``), per-epoch inputs
(``start_epoch``), facts per epoch (``epoch_facts``) and checkpointed state (``state_dict``). Its
capability flags are checked in one place (``check_support``) before anything is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch


@dataclass
class Batch:
    """One training batch and what a method needs to compute its loss.

    ``net`` is what the batch goes through (the model, or its DDP wrapper); ``model`` the bare
    model (``forward_with_features``); ``indices`` the cases' positions in the training list;
    ``progress`` the share of all training steps done, in [0, 1].
    """

    model: torch.nn.Module
    net: torch.nn.Module
    images: torch.Tensor
    targets: Any
    indices: torch.Tensor
    loss_fn: Callable
    progress: float
    step: int


class TrainingMethod(ABC):
    """A way to train an arm's model on a fold. Subclasses set ``name`` and implement ``losses`` (at least).

    Capability flags say where the method can run; ``medtl cv`` refuses an arm whose method
    lacks one the run needs (DDP, a cluster engine, native-extent patches), naming both.
    """

    name: str = ""
    description: str = ""
    supports_ddp: bool = True
    supports_executor: bool = True
    supports_patch_mode: bool = True
    needs_target_images: bool = False  # unlabelled target images (adapt.target_manifest or a held-out site)
    owns_loop: bool = False  # the method runs its own training loop (``fit_loop``: federated rounds)

    def __init__(self, config):
        self.config = config

    def setup(self, model, train_cases: Sequence, targets: Sequence, device: torch.device, seed: int) -> dict:
        """Fold-level preparation before the first epoch; returns facts for the fold's record (``FoldResult.method``)."""
        return {}

    def modules(self) -> list[torch.nn.Module]:
        """Trainable modules the method adds (moved to the device, switched to train mode, checkpointed)."""
        return []

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser groups of the method's own parameters."""
        return [{"params": list(m.parameters()), "lr": lr} for m in self.modules() if list(m.parameters())]

    def start_epoch(self, seed: int, steps: int, batch_size: int, workers: int, augment) -> None:
        """Called before each epoch with that epoch's seed (draw per-epoch inputs here, resume-exact)."""

    @classmethod
    def loop_epochs(cls, config) -> int:
        """Epochs of the training loop (progress and ETA): ``train.epochs``; a method with its own loop may differ."""
        return config.train.epochs

    def fit_loop(self, model, train_cases, config, state_path, seed, inner_cases, inner_score, on_epoch, on_batch):
        """A method whose loop is its own (``owns_loop``): train the fold and return a ``FitResult``."""
        raise TypeError(f"training method '{self.name}' sets owns_loop but does not define fit_loop")

    @abstractmethod
    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``(task loss to report, objective to minimise, facts of this batch)``."""

    def epoch_facts(self, facts: list[dict]) -> dict[str, float]:
        """One epoch's facts for its history record (default: the mean of each batch fact)."""
        return {key: float(np.mean([f[key] for f in facts if key in f])) for key in sorted({k for f in facts for k in f})}

    def state_dict(self) -> dict:
        """What an epoch checkpoint keeps besides the model (bit-exact resume)."""
        return {f"module{i}": m.state_dict() for i, m in enumerate(self.modules())}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict`` output on resume."""
        for i, module in enumerate(self.modules()):
            module.load_state_dict(state[f"module{i}"])
