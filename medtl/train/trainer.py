"""``Trainer``: the epoch loop every medtl training shares (fine-tuning, source stages, self-supervised).

It owns what must be the same everywhere: each epoch's randomness drawn from ``(seed, epoch)``
alone, a resumable epoch checkpoint written in the background (only by the writing process),
the optimiser step with the AMP scaler and the learning-rate schedule, the divergence check
that stops a fold on a NaN/inf loss, and the ``on_epoch`` report with the epoch's seconds
(which stay out of the history, so a resumed run's history equals an uninterrupted one's).
What an epoch does is the caller's ``run_epoch(epoch, seed) -> record``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import TrainingDivergedError
from ..models.checkpoint import BackgroundCheckpointWriter, load_training_state

log = logging.getLogger("medtl")
_RENAMED = {"adaptation": "method"}  # old checkpoint key -> current (the training method's state, medtl 0.1 before v2)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness: a function of the fold seed and the epoch alone (resume-exact)."""
    return (seed * 1_000_003 + epoch * 7919) % (2**31 - 1)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up to 1, then cosine decay to 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def raise_non_finite_loss(loss: torch.Tensor, epoch: int, case_ids: list[str]) -> None:
    """Stop the fold: a NaN/inf loss would silently turn the model into NaN and every later number with it."""
    shown = ", ".join(case_ids[:8]) + (f" and {len(case_ids) - 8} more" if len(case_ids) > 8 else "")
    raise TrainingDivergedError(f"the training loss became {loss.item()} in epoch {epoch + 1} on a batch of cases "
                                f"{shown}; check those cases' images (values, masks), or lower train.lr")


class Trainer:
    """Epochs, resume, checkpoints, optimiser steps and the divergence check.

    ``parts`` names everything an epoch checkpoint holds (``{"model": model, "optimizer": ...}``:
    any object with ``state_dict``/``load_state_dict``); a part whose stored state is empty is
    left as built. ``extra`` values (e.g. the selected epoch) travel in the checkpoint as they are.
    """

    def __init__(self, state_path: Path, parts: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler,
                 scaler: torch.amp.GradScaler | None = None, writes: bool = True, final_checkpoint: bool = True):
        self.state_path, self.parts, self.optimizer, self.scheduler = state_path, parts, optimizer, scheduler
        self.scaler = scaler or torch.amp.GradScaler("cuda", enabled=False)
        self.writes = writes
        # the last epoch's checkpoint is only worth its cost (a snapshot and a write of model and optimiser) when
        # it is kept: a fold that stops before its record is written repeats the last epoch, identically
        self.final_checkpoint = final_checkpoint
        self.history: list[dict] = []
        self.extra: dict[str, Any] = {}
        self.start = 0

    def resume(self) -> bool:
        """Load the epoch checkpoint when there is one; returns whether training resumes."""
        if not self.state_path.exists():
            return False
        state = load_training_state(self.state_path)
        for old, key in _RENAMED.items():  # checkpoints written before the key was renamed
            if key not in state and old in state:
                state[key] = state.pop(old)
        for key, part in self.parts.items():
            if state.get(key):
                part.load_state_dict(state[key])
        self.history, self.start = list(state["history"]), int(state["epoch"]) + 1
        self.extra = {k: v for k, v in state.items() if k not in self.parts and k not in ("history", "epoch")}
        log.debug("resuming %s at epoch %d", self.state_path.parent.name, self.start)
        return True

    def step(self, objective: torch.Tensor, epoch: int, case_ids: Callable[[], list[str]],
             penalty: Callable[[], torch.Tensor | float] | None = None) -> None:
        """One optimiser step on ``objective`` (+ ``penalty()``, a regulariser), refused when the objective is not
        finite, then the schedule's step."""
        if not torch.isfinite(objective):
            raise_non_finite_loss(objective, epoch, case_ids())
        total = objective + penalty() if penalty is not None else objective
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def apply(self, loss: torch.Tensor, epoch: int, case_ids: Callable[[], list[str]]) -> None:
        """An optimiser step on gradients already in ``p.grad`` (DP-SGD sets them itself), refused when the
        batch's loss is not finite, then the schedule's step."""
        if not torch.isfinite(loss):
            raise_non_finite_loss(loss, epoch, case_ids())
        self.optimizer.step()
        self.scheduler.step()

    def run(self, epochs: int, seed: int, run_epoch: Callable[[int, int], dict],
            on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        """Epochs ``start .. epochs - 1``: seed, ``run_epoch(epoch, epoch_seed)``, record, checkpoint, report."""
        writer = BackgroundCheckpointWriter()
        try:  # an interrupt (Ctrl-C, a failed batch) still lets the checkpoint in flight finish
            for epoch in range(self.start, epochs):
                started = time.perf_counter()
                seed_now = epoch_seed(seed, epoch)
                torch.manual_seed(seed_now)
                record = run_epoch(epoch, seed_now)
                self.history.append(record)
                if self.writes and (epoch < epochs - 1 or self.final_checkpoint):
                    writer.save(self.state_path, {**{k: p.state_dict() for k, p in self.parts.items()},
                                                  "epoch": epoch, "history": list(self.history), **self.extra})
                if on_epoch:  # seconds go to the caller only: the history stays the same when a run is resumed
                    on_epoch({**record, "seconds": round(time.perf_counter() - started, 2)})
        finally:
            writer.wait()
        return self.history
