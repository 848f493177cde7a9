"""The parity gate: the exported network must give the PyTorch model's outputs on real cases."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import DataConfig
from ..models.sliding import network_logits


@dataclass
class Parity:
    """Largest differences between exported and PyTorch outputs over the checked cases."""

    atol: float
    rtol: float
    n_cases: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_excess: float = -np.inf  # max of |a - b| - (atol + rtol |b|): > 0 means the gate fails
    non_finite: int = 0
    per_member: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every value within ``atol + rtol * |reference|`` and nothing NaN/inf."""
        return self.n_cases > 0 and self.worst_excess <= 0 and not self.non_finite

    def add(self, member: str, reference: np.ndarray, exported: np.ndarray) -> None:
        """Fold one batch of outputs of ``member`` into the figures."""
        reference, exported = reference.astype(np.float64), exported.astype(np.float64)
        difference = np.abs(exported - reference)
        finite = np.isfinite(exported).all() and np.isfinite(reference).all()
        self.non_finite += int(not finite)
        relative = difference / np.maximum(np.abs(reference), 1e-12)
        excess = float(np.max(difference - (self.atol + self.rtol * np.abs(reference)))) if difference.size else 0
        figures = self.per_member.setdefault(member, {"n_cases": 0, "max_abs": 0.0, "max_rel": 0.0})
        figures["n_cases"] += len(reference)
        figures["max_abs"] = max(figures["max_abs"], float(difference.max()))
        figures["max_rel"] = max(figures["max_rel"], float(relative.max()))
        self.n_cases += len(reference)
        self.max_abs, self.max_rel = max(self.max_abs, figures["max_abs"]), max(self.max_rel, figures["max_rel"])
        self.worst_excess = max(self.worst_excess, excess)

    def summary(self) -> dict:
        """The figures for ``model.json``."""
        return {"passed": self.passed, "atol": self.atol, "rtol": self.rtol, "n_cases": self.n_cases,
                "max_abs_error": self.max_abs, "max_rel_error": self.max_rel, "members": self.per_member}


@torch.no_grad()
def compare_outputs(member: str, model: torch.nn.Module, exported: torch.nn.Module, images: list[np.ndarray],
                    data: DataConfig, parity: Parity, batch_size: int = 8) -> None:
    """Run both networks on prepared ``images`` (``(1, *spatial)`` each) the way inference does; record."""
    device = torch.device("cpu")
    model.eval()
    step = batch_size if data.fixed_size else 1
    for start in range(0, len(images), step):
        batch = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) for i in images[start:start + step]]))
        reference = network_logits(model, batch, data, device).numpy()
        candidate = network_logits(exported, batch, data, device).numpy()
        parity.add(member, reference, candidate)
