"""Federated fine-tuning, simulated in one process: clients are the sites of the training patients.

Each round, the chosen clients start from the global weights and train ``fed.local_epochs``
epochs on their own site's training images only (``client_update``: its inputs are the global
state and that client's cases); the server (``aggregate``) receives nothing but each client's
weights and its number of training images, and averages the weights in that proportion.
BatchNorm: averaged like every tensor, or kept per client (FedBN; the shared model carries
their weighted average). Every client's randomness comes from ``(seed, round, client)``, and
the round checkpoint holds the global weights, each client's own BatchNorm tensors and DP
accountant, so a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..config import Config
from ..data.dataset import PreparedCase
from ..errors import InputError
from ..models.checkpoint import save_weights
from ..models.device import compute_threads, resolve_device
from ..tasks import task_of
from .trainer import Trainer, epoch_seed, raise_non_finite_loss, warmup_cosine


def clients_of(cases: list[PreparedCase]) -> dict[str, list[PreparedCase]]:
    """``{site: its cases}`` in site order (one client ``""`` when the manifest has no site column)."""
    clients: dict[str, list[PreparedCase]] = defaultdict(list)
    for case in cases:
        clients[case.site].append(case)
    return {site: clients[site] for site in sorted(clients)}


def batch_norm_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys of every BatchNorm layer (weights, biases, running statistics)."""
    keys = set()
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            keys |= {f"{name}.{k}" for k in module.state_dict()}
    return keys


def aggregate(updates: list[tuple[int, dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """The server's step: the average of the clients' weights, each weighted by its number of training images
    (integer counters such as ``num_batches_tracked``: the largest). It sees weights and counts, nothing else."""
    total = sum(weight for weight, _ in updates)
    merged = {}
    for key, first in updates[0][1].items():
        if first.is_floating_point():
            merged[key] = sum(state[key] * (weight / total) for weight, state in updates)
        else:
            merged[key] = torch.stack([state[key] for _, state in updates]).max(0).values
    return merged


def client_update(model: torch.nn.Module, start: dict[str, torch.Tensor], cases: list[PreparedCase], config: Config,
                  seed: int, lr: float, prox_mu: float, private=None) -> tuple[dict[str, torch.Tensor], float]:
    """One client's round: ``fed.local_epochs`` epochs on its own cases from ``start``; returns its weights and
    mean training loss. FedProx adds ``mu/2 ||w - start||^2`` (``prox_mu > 0``)."""
    from .loop import _as_float, _to_device, make_loader, private_epoch

    device = next(model.parameters()).device
    model.load_state_dict(start)
    reference = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    train = config.train
    if train.optimizer == "adamw":
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=train.weight_decay)
    else:
        optimizer = torch.optim.SGD(trainable, lr=lr, momentum=0.9, weight_decay=train.weight_decay)
    task = task_of(config)
    weights = task.class_weights(cases, model.num_classes, train.class_weights)  # of this client's own cases
    loss_fn = task.loss(train.loss, None if weights is None else weights.to(device))
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)

    def proximal() -> torch.Tensor:
        return sum(((p - reference[n]) ** 2).sum() for n, p in model.named_parameters() if n in reference)

    from ..transforms.presets import augment_pipeline

    augment = augment_pipeline(config.data, task.uses_mask)  # the same augmentation as pooled training
    total, count = 0.0, 0
    model.train()
    for local_epoch in range(config.fed.local_epochs):
        seed_now = epoch_seed(seed, local_epoch)
        torch.manual_seed(seed_now)
        if augment is not None:
            augment.set_random_state(seed=seed_now)
        if private is not None:
            def step(loss, ids):
                if not torch.isfinite(loss):
                    raise_non_finite_loss(loss, local_epoch, ids())
                if prox_mu > 0:  # the proximal term depends on no image: its gradient is added after the noise
                    penalty = torch.autograd.grad(prox_mu / 2 * proximal(), trainable, allow_unused=True)
                    for parameter, extra in zip(trainable, penalty):
                        if extra is not None:
                            parameter.grad = parameter.grad + extra
                optimizer.step()
            summed, seen, _ = private_epoch(private, model, cases, config, augment, loss_fn, device, seed_now, step,
                                            None)
            total, count = total + summed, count + seen
            continue
        for images, targets, indices in make_loader(cases, config, seed_now, augment):
            images, targets = images.to(device), _to_device(targets, device)
            loss = loss_fn(_as_float(model(images)), targets)  # multitask: {task: logits}
            objective = loss + (prox_mu / 2 * proximal() if prox_mu > 0 else 0.0)
            if not torch.isfinite(objective):
                raise_non_finite_loss(objective, local_epoch, [cases[int(i)].case_id for i in indices])
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total, count = total + float(loss.detach()) * len(images), count + len(images)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, total / max(1, count)


def client_task(model: torch.nn.Module, start: dict, cases: list[PreparedCase], config: Config, seed: int, lr: float,
                prox_mu: float, private, threads: int):
    """``client_update`` as one unit of a cluster engine (``fed.executor``): the client's model, cases and
    accountant travel to the worker, its weights, loss and accountant come back."""
    torch.set_num_threads(threads)
    state, loss = client_update(model, start, cases, config, seed, lr, prox_mu, private)
    return state, loss, private


class ServerState:
    """What the server keeps between rounds besides the global weights: FedBN's per-client BatchNorm tensors and
    each client's DP accountant (a checkpoint part)."""

    def __init__(self, private: dict):
        self.local_bn: dict[str, dict[str, torch.Tensor]] = {}
        self.private = private

    def state_dict(self) -> dict:
        return {"local_bn": self.local_bn, "private": {k: p.state_dict() for k, p in self.private.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.local_bn = dict(state.get("local_bn", {}))
        for key, part in state.get("private", {}).items():
            self.private[key].load_state_dict(part)


def fit_federated(model, train_cases: list[PreparedCase], config: Config, state_path: Path, seed: int,
                  prox_mu: float, inner_cases: list[PreparedCase] | None = None,
                  inner_score: Callable[[Iterable[np.ndarray], list[PreparedCase]], float] | None = None,
                  on_epoch: Callable[[dict], None] | None = None):
    """Federated training of ``model`` (rounds as the loop's epochs, reported through ``on_epoch``); returns a
    ``FitResult``."""
    from .loop import FitResult, predict_each

    fed, train = config.fed, config.train
    device = resolve_device(train.device)
    torch.set_num_threads(compute_threads(train.threads, train.workers))
    model.to(device)
    clients = clients_of(train_cases)
    if not clients:
        raise InputError("federated training: the fold has no training case")
    private = {}
    if config.privacy.dp:
        from .privacy import PrivateGradients, check_private_model

        check_private_model(model, config.model.backbone)
        private = {site: PrivateGradients(config.privacy, len(cases), train.batch_size,
                                          fed.rounds * fed.local_epochs) for site, cases in clients.items()}
    server = ServerState(private)
    bn_keys = batch_norm_keys(model) if fed.batch_norm == "local" else set()
    schedule = warmup_cosine(fed.rounds, 0)
    placeholder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)  # the Trainer's step is unused
    trainer = Trainer(state_path, {"model": model, "server": server}, placeholder,
                      torch.optim.lr_scheduler.LambdaLR(placeholder, lambda s: 1.0))
    trainer.resume()
    result = FitResult(history=trainer.history, selected_epoch=int(trainer.extra.get("selected_epoch", -1)))
    best = max((h.get("inner_score", -math.inf) for h in trainer.history), default=-math.inf)
    local = copy.deepcopy(model)
    names = list(clients)
    threads = compute_threads(train.threads, train.workers)
    executor = None
    if fed.executor != "local":
        from ..executors import open_executor

        executor = open_executor(fed.executor, config.run.scheduler, config.run.workers)

    def run_round(round_index: int, seed_now: int) -> dict:
        nonlocal best
        rng = np.random.default_rng((seed, round_index))
        chosen = names if fed.clients_per_round is None or fed.clients_per_round >= len(names) else \
            sorted(rng.choice(names, fed.clients_per_round, replace=False).tolist())
        lr = train.lr * schedule(round_index)
        shared = {k: v.detach().clone() for k, v in model.state_dict().items()}
        updates, losses = [], []
        calls = [(local, {**shared, **server.local_bn.get(site, {})}, clients[site], config,
                  int(np.random.default_rng((seed, round_index, names.index(site))).integers(2**31 - 1)), lr,
                  prox_mu, private.get(site), threads) for site in chosen]
        if executor is None:
            results = [client_task(*call) for call in calls]
        else:
            results = executor.map(client_task, calls, [f"client {site} round {round_index + 1}" for site in chosen])
        for site, (state, loss, accountant) in zip(chosen, results):
            if site in private:  # the client's accountant, as the client left it
                private[site] = server.private[site] = accountant
            if bn_keys:
                server.local_bn[site] = {k: state[k] for k in bn_keys}
            updates.append((len(clients[site]), state))
            losses.append((len(clients[site]), loss))
        model.load_state_dict(aggregate(updates))
        record = {"epoch": round_index, "round": round_index + 1, "clients": len(chosen), "lr": lr,
                  "train_loss": sum(w * v for w, v in losses) / sum(w for w, _ in losses)}
        if inner_cases:
            record["inner_score"] = inner_score(predict_each(model, inner_cases, config, device), inner_cases)
            if train.selection == "best_inner" and record["inner_score"] > best:
                best, result.selected_epoch = record["inner_score"], round_index
                save_weights(state_path.with_name("best.safetensors"), model, {"epoch": round_index})
        trainer.extra["selected_epoch"] = result.selected_epoch
        return record

    try:
        trainer.run(fed.rounds, seed, run_round, on_epoch)
    finally:
        if executor is not None:
            executor.close()
    if private:
        spent = [p.spent() for p in private.values()]
        result.privacy = {**max(spent, key=lambda p: p["epsilon"]), "clients": len(spent)}
    if result.selected_epoch < 0 or train.selection == "last":
        result.selected_epoch = fed.rounds - 1
    return result
