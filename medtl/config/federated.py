"""``fed``: federated fine-tuning across the sites of the ``site`` column (``train.method: fedavg | fedprox``;
docs/privacy.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


class FederatedConfig(Section):
    """Each site is a client that trains only on its own training patients; the server averages the clients'
    weights (weighted by their training images) after every round. ``train.epochs`` is ignored: ``rounds``
    rounds of ``local_epochs`` local epochs each."""

    rounds: int = Field(10, ge=1)
    local_epochs: int = Field(1, ge=1)
    clients_per_round: int | None = Field(None, ge=1)  # default: every site each round
    mu: float = Field(0.01, ge=0)  # fedprox: weight of the proximal term mu/2 ||w - w_global||^2
    # average: BatchNorm weights and statistics averaged like every other tensor; local: each client keeps its own
    # (FedBN), and the shared model scored on the test folds carries their case-weighted average
    batch_norm: Literal["average", "local"] = "average"
    # where each round's clients train: one after another in the fold's process, or one client per task on a
    # Dask / Ray cluster (run.scheduler, run.workers), with the same results for the same seed and train.threads
    executor: Literal["local", "dask", "ray"] = "local"
