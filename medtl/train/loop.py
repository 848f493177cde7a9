"""The training loop: plain PyTorch, resumable, deterministic on CPU for a given seed.

Every epoch draws its randomness (sampler order, augmentation, dropout) from
``(seed, epoch)``, so a run resumed from an epoch checkpoint continues exactly as
the uninterrupted run would have.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..config import Config
from ..data.dataset import CaseDataset, PreparedCase
from ..data.patches import PatchDataset
from ..errors import TrainingDivergedError
from ..models.build import MedtlModel
from ..models.checkpoint import BackgroundCheckpointWriter, load_training_state, save_weights
from ..models.device import compute_threads, resolve_device
from ..models.sliding import network_logits
from ..tasks import task_of
from ..tasks.multitask_loss import MultiTaskLoss
from . import distributed as ddp
from .adaptation import DomainTraining
from .finetune import L2SP, apply_strategy, parameter_groups

log = logging.getLogger("medtl")


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


@dataclass
class FitResult:
    """Per-epoch history, the epoch whose weights were kept, and fallbacks to report."""

    history: list[dict] = field(default_factory=list)
    selected_epoch: int = -1
    notes: list[str] = field(default_factory=list)  # fallbacks that must be reported


def make_loader(cases: list[PreparedCase], config: Config, seed: int, augment=None, train: bool = True,
                distributed: bool = False):
    """Batches of ``cases``; for training a seeded shuffle (or class-balanced sampling), else in order.

    Cases at native extent (patch mode) train on ``data.patches_per_case`` patches each
    and are predicted one case per batch (sliding windows are batched instead).
    ``distributed`` (training under DDP): this process's share of each global batch.
    """
    data = config.data
    per_item = 1
    if train and not data.fixed_size:
        per_item = data.patches_per_case
        dataset = PatchDataset(cases, tuple(data.patch_size), per_item, data.foreground_ratio, seed, augment)
    else:
        dataset = CaseDataset(cases, augment, getattr(task_of(config), "kinds", None))
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    labels = task_of(config).sampling_labels(cases) if train and config.train.sampler == "balanced" else None
    if labels is not None:
        labels = np.repeat(labels, per_item)
        weights = 1.0 / np.bincount(labels)[labels]
        sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights), len(labels), generator=generator)
    elif train:
        sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
    batch_size = config.train.batch_size if train or data.fixed_size else 1
    # a trailing training batch of one item breaks BatchNorm (one value per channel at a 1-voxel bottleneck,
    # e.g. a 32^3 patch) and gives it noisy statistics anyway: that item waits for the next epoch's shuffle
    lone_last = train and len(dataset) > batch_size and len(dataset) % batch_size == 1
    if train and distributed and ddp.active():
        batches = torch.utils.data.BatchSampler(sampler, batch_size, drop_last=lone_last)
        return torch.utils.data.DataLoader(dataset, batch_sampler=ddp.RankBatches(batches, ddp.rank(), ddp.world()),
                                           num_workers=config.train.workers)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                       num_workers=config.train.workers, drop_last=lone_last)


def _to_device(targets, device: torch.device):
    """A target tensor, or a multi-task ``{task: tensor}``, on ``device``."""
    if isinstance(targets, dict):
        return {name: value.to(device) for name, value in targets.items()}
    return targets.to(device)


def _as_float(logits):
    """Logits (or a multi-task ``{task: logits}``) in float32 (AMP computes in float16)."""
    if isinstance(logits, dict):
        return {name: value.float() for name, value in logits.items()}
    return logits.float()


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.float16) if enabled and device.type == "cuda" else nullcontext()


def predict_each(model: MedtlModel, cases: list[PreparedCase], config: Config, device: torch.device,
                 distributed: bool = False) -> Iterator[np.ndarray]:
    """Per case, in order: class probabilities ``(C,)`` or a label map ``(*spatial)``.

    A generator, so that label maps of native-extent volumes are scored one at a time
    instead of all held in memory. ``distributed`` (every rank calls it): each process
    predicts every W-th case and the outputs are gathered back in order, so each case is
    predicted exactly once.
    """
    if distributed and ddp.active():
        mine = list(_predict_cases(model, cases[ddp.rank()::ddp.world()], config, device))
        yield from ddp.gather_in_order(mine, len(cases))
        return
    yield from _predict_cases(model, cases, config, device)


@torch.no_grad()
def _predict_cases(model: MedtlModel, cases: list[PreparedCase], config: Config,
                   device: torch.device) -> Iterator[np.ndarray]:
    model.eval()
    task = task_of(config)
    for images, _, _ in make_loader(cases, config, 0, train=False):
        with _autocast(device, config.train.amp):
            logits = network_logits(model, images, config.data, device)
        yield from task.outputs(logits)


def predict(model: MedtlModel, cases: list[PreparedCase], config: Config, device: torch.device) -> list[np.ndarray]:
    """``predict_each`` as a list."""
    return list(predict_each(model, cases, config, device))


def fit(model: MedtlModel, train_cases: list[PreparedCase], config: Config, state_path: Path, seed: int,
        inner_cases: list[PreparedCase] | None = None,
        inner_score: Callable[[Iterable[np.ndarray], list[PreparedCase]], float] | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        adaptation: DomainTraining | None = None, distributed: bool = False) -> FitResult:
    """Train (resuming from ``state_path`` when present); returns per-epoch history.

    ``on_batch(step, steps)`` is called after every optimiser step (progress and ETA),
    ``on_epoch(record)`` after every epoch (loss, inner score, seconds). ``adaptation``
    (an adaptation arm) adds DANN's domain loss or per-case importance weights.
    ``distributed`` (every process of a ``torchrun`` group calls it): DistributedDataParallel
    over the global batch (``medtl.train.distributed``); only rank 0 writes checkpoints.
    """
    from ..transforms.presets import augment_pipeline

    train_cfg, device = config.train, resolve_device(config.train.device)
    distributed = distributed and ddp.active()
    if distributed and adaptation is not None:
        raise ValueError("domain adaptation arms do not train under DDP")
    if distributed and train_cfg.batch_size < 2 * ddp.world():
        from ..errors import ConfigError

        raise ConfigError(f"train.batch_size {train_cfg.batch_size} is the global batch: with {ddp.world()} "
                          f"processes it must be at least {2 * ddp.world()} (two items per process for BatchNorm)")
    device = ddp.local_device(device) if distributed else device
    torch.set_num_threads(compute_threads(train_cfg.threads, train_cfg.workers, ddp.local_world() if distributed
                                          else 1))
    if distributed and ddp.sync_batchnorm(config, device):
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BatchNorm statistics over the global batch
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last if config.data.dims == 2 else torch.channels_last_3d)
    regulariser = L2SP(model, config.finetune.l2sp)  # reference = the freshly loaded pretrained weights
    groups = parameter_groups(model, config.finetune.strategy, train_cfg.lr, config.finetune.lr_decay)
    if adaptation is not None:
        adaptation.to(device)
        groups += adaptation.parameter_groups(train_cfg.lr)
    task = task_of(config)
    weights = task.class_weights(train_cases, model.num_classes, train_cfg.class_weights)
    loss_fn = task.loss(train_cfg.loss, None if weights is None else weights.to(device))
    if isinstance(loss_fn, MultiTaskLoss):  # multitask: learned loss weights train with the model
        loss_fn.to(device)
        groups.append({"params": list(loss_fn.parameters()), "lr": train_cfg.lr, "weight_decay": 0.0,
                       "name": "loss_weights"})
    if train_cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    else:
        optimizer = torch.optim.SGD(groups, lr=train_cfg.lr, momentum=0.9, nesterov=True,
                                    weight_decay=train_cfg.weight_decay)
    steps = len(make_loader(train_cases, config, seed, distributed=distributed))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps * train_cfg.epochs, steps * train_cfg.warmup_epochs))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and train_cfg.amp)
    augment = augment_pipeline(config.data, task.uses_mask)
    target_augment = augment_pipeline(config.data, False)  # target images have no mask

    result, start = FitResult(), 0
    if state_path.exists():
        state = load_training_state(state_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result.history, start = list(state["history"]), int(state["epoch"]) + 1
        result.selected_epoch = int(state.get("selected_epoch", -1))
        if adaptation is not None:
            adaptation.load_state_dict(state["adaptation"])
        if isinstance(loss_fn, MultiTaskLoss):
            loss_fn.load_state_dict(state["loss"])
        log.debug("resuming %s at epoch %d", state_path.parent.name, start)
    best = max((h.get("inner_score", -math.inf) for h in result.history), default=-math.inf)
    writer = BackgroundCheckpointWriter()
    net = model  # what the batches go through: the model, or its DDP wrapper

    try:  # an interrupt (Ctrl-C, a failed batch) still lets the checkpoint in flight finish
        for epoch in range(start, train_cfg.epochs):
            epoch_started = time.perf_counter()
            before = set(model.frozen_stages)
            apply_strategy(model, config.finetune.strategy, epoch, config.finetune.unfreeze_every)
            if distributed and (net is model or model.frozen_stages != before):
                # rebuilt when layers unfreeze: DDP syncs the parameters that train
                net = ddp.wrap(model, device, isinstance(loss_fn, MultiTaskLoss))
            torch.manual_seed(epoch_seed(seed, epoch))
            if augment is not None:
                augment.set_random_state(seed=epoch_seed(seed, epoch))
            model.train()
            total, count, facts = 0.0, 0, []
            target_batches = None if adaptation is None else adaptation.target_batches(
                epoch_seed(seed, epoch) + 1, steps, train_cfg.batch_size, target_augment, train_cfg.workers)
            if adaptation is not None:
                adaptation.train()
            for step, (images, targets, indices) in enumerate(
                    make_loader(train_cases, config, epoch_seed(seed, epoch), augment, distributed=distributed)):
                images, targets = images.to(device), _to_device(targets, device)
                if device.type == "cuda":
                    images = images.contiguous(memory_format=torch.channels_last if images.dim() == 4
                                               else torch.channels_last_3d)
                with _autocast(device, train_cfg.amp):
                    if adaptation is None:
                        loss = objective = loss_fn(_as_float(net(images)), targets)
                    else:
                        extra = None if target_batches is None else next(target_batches)[: len(images)]
                        progress = (epoch * steps + step) / max(1, steps * train_cfg.epochs)
                        loss, objective, fact = adaptation.losses(model, images, targets, indices, loss_fn, extra,
                                                                  progress)
                        facts.append(fact)
                if not torch.isfinite(objective):
                    raise_non_finite_loss(objective, epoch, [train_cases[int(i)].case_id for i in indices])
                penalty = regulariser.penalty(model)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(objective + penalty).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                total += loss.item() * len(images)
                count += len(images)
                if on_batch:
                    on_batch(math.ceil(count / train_cfg.batch_size), steps)
            mean_loss = total / max(1, count)
            record = {"epoch": epoch, "train_loss": ddp.average_scalar(mean_loss) if distributed else mean_loss,
                      "lr": scheduler.get_last_lr()[0]}
            for key in sorted({k for f in facts for k in f}):  # DANN: domain loss, discriminator accuracy, lambda
                record[key] = float(np.mean([f[key] for f in facts if key in f]))
            if isinstance(loss_fn, MultiTaskLoss):  # multitask: each task's loss and weight
                record.update(loss_fn.epoch_facts())
            if inner_cases:
                record["inner_score"] = inner_score(predict_each(model, inner_cases, config, device, distributed),
                                                    inner_cases)
                if train_cfg.selection == "best_inner" and record["inner_score"] > best:
                    best, result.selected_epoch = record["inner_score"], epoch
                    if ddp.is_main():
                        save_weights(state_path.with_name("best.safetensors"), model, {"epoch": epoch})
            result.history.append(record)
            if ddp.is_main():
                writer.save(state_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                         "scheduler": scheduler.state_dict(), "epoch": epoch,
                                         "history": list(result.history), "selected_epoch": result.selected_epoch,
                                         "adaptation": {} if adaptation is None else adaptation.state_dict(),
                                         "loss": loss_fn.state_dict() if isinstance(loss_fn, MultiTaskLoss) else {}})
            if on_epoch:  # seconds go to the caller only: the history stays the same when a run is resumed
                on_epoch({**record, "seconds": round(time.perf_counter() - epoch_started, 2)})
    finally:
        writer.wait()
    if train_cfg.selection == "best_inner" and result.selected_epoch < 0:
        result.notes.append("inner-split score undefined in every epoch (too few inner cases or a single class); "
                            "the last epoch was used")
    if result.selected_epoch < 0 or train_cfg.selection == "last":
        result.selected_epoch = train_cfg.epochs - 1
    return result
