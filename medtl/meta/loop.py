"""The meta-training loop: the supervised loop's ``Trainer`` around episodes.

An epoch is ``meta.episodes_per_epoch`` episodes, ``meta.tasks_per_step`` per outer step
(Adam at ``source.lr``, constant). Episode ``e`` depends on the stage seed and ``e`` alone,
and the epoch checkpoint holds the meta-parameters, the method's own state (inner learning
rates), the optimiser and the episode counter, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..models.device import compute_threads, resolve_device
from ..train.trainer import Trainer
from .episodes import EpisodeImages, EpisodeSampler
from .methods import MetaMethod


class _MethodState:
    """The method's checkpointed state as a ``Trainer`` part."""

    def __init__(self, method: MetaMethod):
        self.method = method

    def state_dict(self) -> dict:
        return self.method.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state)


def fit_meta(method: MetaMethod, model: torch.nn.Module, sampler: EpisodeSampler, images: list, train, meta,
             state_path: Path, seed: int, on_epoch: Callable[[dict], None] | None = None,
             on_batch: Callable[[int, int], None] | None = None) -> list[dict]:
    """Meta-train ``model`` with ``method`` on ``sampler``'s episodes; returns the history.

    History records per epoch: query loss, query accuracy (of the adapted model, before the
    outer step), the episodes seen so far, and the learning rate.
    """
    device = resolve_device(train.device)
    torch.set_num_threads(compute_threads(train.threads, train.workers))
    model.to(device)
    for module in method.modules():
        module.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    parameters += [p for m in method.modules() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=train.lr, foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    trainer = Trainer(state_path, {"model": model, "method": _MethodState(method), "optimizer": optimizer,
                                   "scheduler": scheduler}, optimizer, scheduler)
    trainer.resume()
    per_epoch, per_step = meta.episodes_per_epoch, meta.tasks_per_step
    steps = math.ceil(per_epoch / per_step)

    def run_epoch(epoch: int, seed_now: int) -> dict:
        episodes = EpisodeImages(sampler, images, epoch * per_epoch, per_epoch)
        loader = torch.utils.data.DataLoader(episodes, batch_size=None, num_workers=train.workers)
        model.train()
        losses, accuracies, group = [], [], []
        for item in loader:
            group.append(item)
            if len(group) < per_step and item[4] != epoch * per_epoch + per_epoch - 1:
                continue
            parts = [method.episode_loss(model, sx.to(device), sy.to(device), qx.to(device), qy.to(device))
                     for sx, sy, qx, qy, _ in group]
            loss = torch.stack([p[0] for p in parts]).mean()
            numbers = [int(g[4]) for g in group]
            trainer.step(loss, epoch, lambda: [f"episode {n}" for n in numbers])
            losses.append(loss.item())
            accuracies += [p[1] for p in parts]
            group = []
            if on_batch:
                on_batch(len(losses), steps)
        return {"epoch": epoch, "train_loss": float(np.mean(losses)), "query_accuracy": float(np.mean(accuracies)),
                "episodes": (epoch + 1) * per_epoch, "lr": scheduler.get_last_lr()[0]}

    return trainer.run(train.epochs, seed, run_epoch, on_epoch)
