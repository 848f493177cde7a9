"""``fedprox``: FedAvg with a proximal term ``fed.mu / 2 ||w - w_global||^2`` in every client's loss (Li et al.,
2020), which keeps clients with different data from drifting apart between averages."""

from __future__ import annotations

from .fedavg import FedAvg


class FedProx(FedAvg):
    """FedAvg whose clients are pulled toward the round's global weights."""

    name = "fedprox"
    description = "FedAvg with a proximal term toward the global weights (fed.mu)"

    def __init__(self, config):
        super().__init__(config)
        self.prox_mu = config.fed.mu
