"""``fedavg``: federated averaging across the sites (McMahan et al., 2017); the training loop is its own
(``medtl.train.federated``), the rest of the fold (scoring, checkpoints of the fold model) is unchanged."""

from __future__ import annotations

from .base import Batch, TrainingMethod


class FedAvg(TrainingMethod):
    """Clients = sites; each round, local epochs on each site's own training images, then the case-weighted
    average of the clients' weights."""

    name = "fedavg"
    description = "federated averaging: each site trains on its own patients, the server averages the weights"
    supports_ddp = False
    supports_patch_mode = False
    owns_loop = True
    prox_mu = 0.0

    @classmethod
    def loop_epochs(cls, config) -> int:
        return config.fed.rounds  # one round is one step of the progress bar and one epoch line

    def setup(self, model, train_cases, targets, device, seed) -> dict:
        from collections import Counter

        fed = self.config.fed
        return {"method": self.name, "clients": dict(sorted(Counter(c.site for c in train_cases).items())),
                "rounds": fed.rounds, "local_epochs": fed.local_epochs, "clients_per_round": fed.clients_per_round,
                "batch_norm": fed.batch_norm, "mu": self.prox_mu}

    def fit_loop(self, model, train_cases, config, state_path, seed, inner_cases, inner_score, on_epoch, on_batch):
        from ..federated import fit_federated

        return fit_federated(model, train_cases, config, state_path, seed, self.prox_mu, inner_cases, inner_score,
                             on_epoch)

    def losses(self, batch: Batch):  # the local loss: the task loss (FedProx adds its term in the client loop)
        loss = batch.loss_fn(batch.net(batch.images).float(), batch.targets)
        return loss, loss, {}
