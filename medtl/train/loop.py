"""The training loop: plain PyTorch, resumable, deterministic on CPU for a given seed.

Every epoch draws its randomness (sampler order, augmentation, dropout) from
``(seed, epoch)``, so a run resumed from an epoch checkpoint continues exactly as
the uninterrupted run would have.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..config import Config
from ..data.dataset import CaseDataset, PreparedCase
from ..data.patches import PatchDataset
from ..models.build import MedtlModel
from ..models.checkpoint import save_weights
from ..models.device import compute_threads, resolve_device
from ..models.sliding import network_logits
from ..tasks import task_of
from . import distributed as ddp
from . import peft
from .finetune import L2SP, apply_strategy, parameter_groups
from .methods.base import Batch, TrainingMethod
from .trainer import Trainer, epoch_seed, raise_non_finite_loss, warmup_cosine  # noqa: F401  (re-exported)

log = logging.getLogger("medtl")


@dataclass
class FitResult:
    """Per-epoch history, the epoch whose weights were kept, and fallbacks to report."""

    history: list[dict] = field(default_factory=list)
    selected_epoch: int = -1
    notes: list[str] = field(default_factory=list)  # fallbacks that must be reported
    tuned: "peft.TunedState | None" = None  # PEFT strategies: what trained (its best.safetensors holds only that)
    privacy: dict = field(default_factory=dict)  # DP-SGD: the (epsilon, delta) spent and the mechanism's settings


def make_loader(cases: list[PreparedCase], config: Config, seed: int, augment=None, train: bool = True,
                distributed: bool = False, pin_memory: bool = False):
    """Batches of ``cases``; for training a seeded shuffle (or class-balanced sampling), else in order.

    Cases at native extent (patch mode) train on ``data.patches_per_case`` patches each
    and are predicted one case per batch (sliding windows are batched instead).
    ``distributed`` (training under DDP): this process's share of each global batch.
    ``pin_memory`` (a CUDA device): batches in page-locked memory, so the copy to the device overlaps compute.
    Workers are started afresh each epoch (not ``persistent_workers``): each epoch's augmentation is seeded in
    the main process and the workers take it with them, so an epoch is the same with any number of workers.
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
                                           num_workers=config.train.workers, pin_memory=pin_memory)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                       num_workers=config.train.workers, drop_last=lone_last, pin_memory=pin_memory)


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
        method: TrainingMethod | None = None, distributed: bool = False) -> FitResult:
    """Train (resuming from ``state_path`` when present); returns per-epoch history.

    ``on_batch(step, steps)`` is called after every optimiser step (progress and ETA),
    ``on_epoch(record)`` after every epoch (loss, inner score, seconds). ``method`` is the
    arm's ``TrainingMethod`` after its ``setup`` (default: plain fine-tuning, ``erm``): it decides
    each batch's loss and may add trainable modules and per-epoch facts.
    ``distributed`` (every process of a ``torchrun`` group calls it): DistributedDataParallel
    over the global batch (``medtl.train.distributed``); only rank 0 writes checkpoints.
    """
    from ..transforms.presets import augment_pipeline
    from .methods import build_method

    train_cfg, device = config.train, resolve_device(config.train.device)
    distributed = distributed and ddp.active()
    method = method or build_method(config)
    if method.owns_loop:  # federated rounds: the method's own loop (medtl.train.federated)
        return method.fit_loop(model, train_cases, config, state_path, seed, inner_cases, inner_score, on_epoch,
                               on_batch)
    device = ddp.local_device(device) if distributed else device
    torch.set_num_threads(compute_threads(train_cfg.threads, train_cfg.workers, ddp.local_world() if distributed
                                          else 1))
    tuned = peft.prepare(model, config.finetune)  # lora: adapters added before the optimiser sees the parameters
    if distributed and ddp.sync_batchnorm(config, device):
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BatchNorm statistics over the global batch
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last if config.data.dims == 2 else torch.channels_last_3d)
    regulariser = L2SP(model, config.finetune.l2sp)  # reference = the freshly loaded pretrained weights
    groups = parameter_groups(model, config.finetune.strategy, train_cfg.lr, config.finetune.lr_decay)
    for module in method.modules():
        module.to(device)
    groups += method.parameter_groups(train_cfg.lr)
    task = task_of(config)
    weights = task.class_weights(train_cases, model.num_classes, train_cfg.class_weights)
    loss_fn = task.loss(train_cfg.loss, None if weights is None else weights.to(device))
    learned_loss = task.loss_parameters(loss_fn)  # multitask: learned loss weights train with the model
    if learned_loss:
        loss_fn.to(device)
        groups.append({"params": learned_loss, "lr": train_cfg.lr, "weight_decay": 0.0, "name": "loss_weights"})
    if train_cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    else:
        optimizer = torch.optim.SGD(groups, lr=train_cfg.lr, momentum=0.9, nesterov=True,
                                    weight_decay=train_cfg.weight_decay)
    private = None
    if config.privacy.dp:  # DP-SGD: Poisson batches, per-image clipped gradients and noise (medtl.train.privacy)
        from .privacy import PrivateGradients, check_private_model

        check_private_model(model, config.model.backbone)
        private = PrivateGradients(config.privacy, len(train_cases), train_cfg.batch_size, train_cfg.epochs)
    steps = private.steps_per_epoch if private else len(make_loader(train_cases, config, seed,
                                                                        distributed=distributed))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps * train_cfg.epochs, steps * train_cfg.warmup_epochs))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and train_cfg.amp)
    augment = augment_pipeline(config.data, task.uses_mask)
    parts = {"model": tuned or model, "optimizer": optimizer, "scheduler": scheduler, "method": method,
             "loss": loss_fn if learned_loss else _NoState(), "privacy": private or _NoState()}
    trainer = Trainer(state_path, parts, optimizer, scheduler, scaler, writes=ddp.is_main(),
                      final_checkpoint=train_cfg.keep_state)
    trainer.resume()
    result = FitResult(history=trainer.history, selected_epoch=int(trainer.extra.get("selected_epoch", -1)),
                       tuned=tuned)
    best = max((h.get("inner_score", -math.inf) for h in trainer.history), default=-math.inf)
    state = {"net": model}  # what the batches go through: the model, or its DDP wrapper

    def run_epoch(epoch: int, seed_now: int) -> dict:
        nonlocal best
        before = set(model.frozen_stages)
        apply_strategy(model, config.finetune.strategy, epoch, config.finetune.unfreeze_every)
        if distributed and (state["net"] is model or model.frozen_stages != before):
            # rebuilt when layers unfreeze: DDP syncs the parameters that train
            state["net"] = ddp.wrap(model, device, task.is_composite)  # multitask heads: unused parameters
        if augment is not None:
            augment.set_random_state(seed=seed_now)
        model.train()
        total, count, facts = 0.0, 0, []
        method.start_epoch(seed_now, steps, train_cfg.batch_size, train_cfg.workers, augment)
        for module in method.modules():
            module.train()
        if private is not None:
            total, count, facts = private_epoch(private, model, train_cases, config, augment, loss_fn, device,
                                                seed_now, lambda loss, ids: trainer.apply(loss, epoch, ids), on_batch)
        for step, (images, targets, indices) in enumerate([] if private is not None else
                make_loader(train_cases, config, seed_now, augment, distributed=distributed,
                            pin_memory=device.type == "cuda")):
            images, targets = images.to(device, non_blocking=True), _to_device(targets, device)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last if images.dim() == 4
                                           else torch.channels_last_3d)
            progress = (epoch * steps + step) / max(1, steps * train_cfg.epochs)
            with _autocast(device, train_cfg.amp):
                loss, objective, fact = method.losses(Batch(model, state["net"], images, targets, indices, loss_fn,
                                                            progress, step))
            facts.append(fact)
            trainer.step(objective, epoch, lambda: [train_cases[int(i)].case_id for i in indices],
                         lambda: regulariser.penalty(model))
            total = total + loss.detach().double() * len(images)  # a float64 tensor: no device sync per step
            count += len(images)
            if on_batch:
                on_batch(math.ceil(count / train_cfg.batch_size), steps)
        mean_loss = float(total) / max(1, count)
        trainable, parameters = peft.trainable_counts(model)
        record = {"epoch": epoch, "train_loss": ddp.average_scalar(mean_loss) if distributed else mean_loss,
                  "lr": scheduler.get_last_lr()[0], "trainable_params": trainable, "total_params": parameters}
        record.update(method.epoch_facts(facts))  # DANN: domain loss, discriminator accuracy, lambda; DP: clipped share
        if private is not None:
            result.privacy = private.spent()
        record.update(task.loss_facts(loss_fn))  # multitask: each task's loss and weight
        if inner_cases:
            record["inner_score"] = inner_score(predict_each(model, inner_cases, config, device, distributed),
                                                inner_cases)
            if train_cfg.selection == "best_inner" and record["inner_score"] > best:
                best, result.selected_epoch = record["inner_score"], epoch
                best_path = state_path.with_name("best.safetensors")
                if ddp.is_main() and tuned is not None:  # PEFT: the tuned tensors and head, bound to the base
                    tuned.save(best_path, {"epoch": epoch})
                elif ddp.is_main():
                    save_weights(best_path, model, {"epoch": epoch})
        trainer.extra["selected_epoch"] = result.selected_epoch
        return record

    trainer.run(train_cfg.epochs, seed, run_epoch, on_epoch)
    if private is not None:
        result.privacy = private.spent()  # also when every epoch was already done (a resumed, finished fold)
    if train_cfg.selection == "best_inner" and result.selected_epoch < 0:
        result.notes.append("inner-split score undefined in every epoch (too few inner cases or a single class); "
                            "the last epoch was used")
    if result.selected_epoch < 0 or train_cfg.selection == "last":
        result.selected_epoch = train_cfg.epochs - 1
    return result


def private_epoch(private, model, cases: list[PreparedCase], config: Config, augment, loss_fn, device, seed: int,
                  apply: Callable, on_batch) -> tuple[float, int, list[dict]]:
    """One DP-SGD epoch over Poisson batches; returns ``(summed loss, images seen, facts per step)``."""
    dataset = CaseDataset(cases, augment, getattr(task_of(config), "kinds", None))
    generator = torch.Generator().manual_seed(seed)  # the noise: drawn on the CPU, the same on any device
    total, count, facts = 0.0, 0, []
    batches = private.batches(seed)
    for step, indices in enumerate(batches):
        items = [dataset[int(i)] for i in indices]
        images = torch.stack([item[0] for item in items]).to(device) if items else None
        targets = torch.stack([item[1] for item in items]).to(device) if items else None
        loss, fact = private.apply(model, loss_fn, images, targets, generator)
        apply(loss / max(1, len(items)), lambda: [cases[int(i)].case_id for i in indices])
        total, count = total + float(loss), count + len(items)
        facts.append(fact)
        if on_batch:
            on_batch(step + 1, len(batches))
    return total, count, facts


class _NoState:
    """A checkpoint part with nothing to keep (a loss without learned weights)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
