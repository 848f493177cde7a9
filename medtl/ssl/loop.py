"""The self-supervised training loop: the supervised loop's ``Trainer`` around a self-supervised objective.

Each epoch draws its order, views or corruptions and dropout from ``(seed, epoch)``
alone, and the epoch checkpoint holds the whole objective (online and target networks,
heads), the optimiser and the schedule, so a resumed run continues exactly.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from ..models.device import compute_threads, resolve_device
from ..train.trainer import Trainer, warmup_cosine
from .probe import ProbeMonitor

log = logging.getLogger("medtl")


def fit_ssl(objective: torch.nn.Module, dataset: torch.utils.data.Dataset, randomised, train, state_path: Path,
            seed: int, probe: ProbeMonitor | None = None, on_epoch: Callable[[dict], None] | None = None,
            on_batch: Callable[[int, int], None] | None = None, case_ids: list[str] | None = None) -> list[dict]:
    """Train ``objective`` (``loss(a, b)``, ``after_step``, ``.encoder``) on ``dataset``; returns the history.

    ``randomised`` is the view pipeline or corruptor (``set_random_state``) the dataset
    draws from; ``train`` the stage's ``TrainConfig``. History records per epoch: loss,
    learning rate and, when a probe is given, its AUC (``probe`` before training is
    recorded as epoch -1).
    """
    device = resolve_device(train.device)
    torch.set_num_threads(compute_threads(train.threads, train.workers))
    objective.to(device)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    if train.optimizer == "adamw":
        optimizer = torch.optim.AdamW(trainable, lr=train.lr, weight_decay=train.weight_decay)
    else:
        optimizer = torch.optim.SGD(trainable, lr=train.lr, momentum=0.9, nesterov=True,
                                    weight_decay=train.weight_decay)
    batch = min(train.batch_size, len(dataset))
    steps = len(dataset) // batch  # full batches only: contrastive losses and BatchNorm need no stragglers
    if steps < 1 or batch < 2:
        raise InputError(f"the self-supervised pool has {len(dataset)} usable unit(s) (images, or patients with "
                         f"ssl.patient_pairs) and source.batch_size is {train.batch_size}; each batch needs at least 2: "
                         "add images or raise the batch size")
    total = steps * train.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, steps * train.warmup_epochs))
    trainer = Trainer(state_path, {"objective": objective, "optimizer": optimizer, "scheduler": scheduler},
                      optimizer, scheduler)
    if not trainer.resume() and probe is not None:
        trainer.history.append({"epoch": -1, "probe_auc": probe.score(objective.encoder, device)})

    def run_epoch(epoch: int, seed_now: int) -> dict:
        randomised.set_random_state(seed_now)
        dataset.seed = seed_now  # MICLe: which two images of a patient pair up this epoch
        generator = torch.Generator().manual_seed(seed_now)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, generator=generator,
                                             num_workers=train.workers, drop_last=True)
        objective.train()
        losses = []
        for step, (first, second, units) in enumerate(loader):
            loss = objective.loss(first.to(device), second.to(device))
            ids = case_ids or [str(i) for i in range(len(dataset))]
            trainer.step(loss, epoch, lambda: [ids[int(u)] for u in units if int(u) < len(ids)])
            objective.after_step(epoch * steps + step + 1, total)
            losses.append(loss.item())
            if on_batch:
                on_batch(step + 1, steps)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0]}
        if probe is not None and probe.due(epoch):
            record["probe_auc"] = probe.score(objective.encoder, device)
        return record

    return trainer.run(train.epochs, seed, run_epoch, on_epoch)


def probe_curve(history: list[dict]) -> list[tuple[int, float]]:
    """``(epoch, probe AUC)`` pairs of a history (epoch 0 = before pretraining), NaN scores dropped."""
    return [(h["epoch"] + 1, h["probe_auc"]) for h in history
            if "probe_auc" in h and not math.isnan(h["probe_auc"])]
