"""The parity gate: the exported network must give the PyTorch model's outputs on real cases.

Both networks compute in float32, each with its own kernels (summation order, fused
operations), so neither gives the exact output. Where a network is ill-conditioned for a
case (e.g. a GroupNorm group whose values are nearly constant: its normalisation divides by
a standard deviation near zero and magnifies every rounding), PyTorch's own float32 output
can be 1e-4 away from the exact one, and an export that errs as little in the other direction
differs from PyTorch by more than the tolerance while being as accurate. So a value outside
the tolerance around PyTorch's output is checked once more against the same network computed
in float64 (the exact output): it passes if the export is within the tolerance of the exact
output widened by twice PyTorch's own float32 error on that value. A real discrepancy (a
wrong operator, epsilon or weight) is far beyond float32 rounding and still fails; every value
passed this way is counted in ``model.json``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import DataConfig
from ..models.sliding import network_logits

log = logging.getLogger("medtl")
FLOAT32_ERROR_FACTOR = 2.0  # an export may err up to this many times PyTorch's own float32 error on a value


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
    within_float32_rounding: int = 0  # values outside the tolerance, passed as PyTorch's own float32 error allows
    pytorch_float32_error: float = 0.0  # the largest |PyTorch float32 - exact| among the values checked that way
    exact_unavailable: str = ""  # why the float64 check could not run (the plain tolerance then decides)

    @property
    def passed(self) -> bool:
        """Every value within ``atol + rtol * |reference|`` (or as close to the exact output, see ``add``) and
        nothing NaN/inf."""
        return self.n_cases > 0 and self.worst_excess <= 0 and not self.non_finite

    def excesses(self, reference: np.ndarray, exported: np.ndarray) -> np.ndarray:
        """Per value, ``|exported - reference| - (atol + rtol * |reference|)`` (> 0: outside the tolerance)."""
        reference, exported = reference.astype(np.float64), exported.astype(np.float64)
        return np.abs(exported - reference) - (self.atol + self.rtol * np.abs(reference))

    def within_tolerance(self, reference: np.ndarray, exported: np.ndarray) -> bool:
        """Every value within ``atol + rtol * |reference|`` (before any float64 check)."""
        return bool(np.all(self.excesses(reference, exported) <= 0))

    def add(self, member: str, reference: np.ndarray, exported: np.ndarray, exact: np.ndarray | None = None) -> None:
        """Fold one batch of outputs of ``member`` into the figures.

        ``exact``: the same network's outputs computed in float64, where some value is outside the
        tolerance: such a value passes if ``|exported - exact| <= atol + rtol |exact| + 2 |reference - exact|``.
        """
        reference, exported = reference.astype(np.float64), exported.astype(np.float64)
        difference = np.abs(exported - reference)
        finite = np.isfinite(exported).all() and np.isfinite(reference).all()
        self.non_finite += int(not finite)
        relative = difference / np.maximum(np.abs(reference), 1e-12)
        excesses = self.excesses(reference, exported)
        if exact is not None and excesses.size:
            exact = exact.astype(np.float64)
            own_error = np.abs(reference - exact)
            from_exact = self.excesses(exact, exported) - FLOAT32_ERROR_FACTOR * own_error
            rounding = (excesses > 0) & (from_exact <= 0)
            self.within_float32_rounding += int(rounding.sum())
            if rounding.any():
                self.pytorch_float32_error = max(self.pytorch_float32_error, float(own_error[rounding].max()))
            excesses = np.minimum(excesses, from_exact)
        excess = float(np.max(excesses)) if excesses.size else 0
        figures = self.per_member.setdefault(member, {"n_cases": 0, "max_abs": 0.0, "max_rel": 0.0})
        figures["n_cases"] += len(reference)
        figures["max_abs"] = max(figures["max_abs"], float(difference.max()))
        figures["max_rel"] = max(figures["max_rel"], float(relative.max()))
        self.n_cases += len(reference)
        self.max_abs, self.max_rel = max(self.max_abs, figures["max_abs"]), max(self.max_rel, figures["max_rel"])
        self.worst_excess = max(self.worst_excess, excess)

    def rounding_note(self) -> str:
        """One sentence on the values passed by the float64 check (empty when there were none)."""
        if not self.within_float32_rounding:
            return ""
        return (f"{self.within_float32_rounding} value(s) outside the tolerance around PyTorch's output passed "
                f"because PyTorch's own float32 result was up to {self.pytorch_float32_error:.2e} from the exact "
                "(float64) output and the export was within the tolerance plus twice that of the exact output")

    def summary(self) -> dict:
        """The figures for ``model.json``."""
        summary = {"passed": self.passed, "atol": self.atol, "rtol": self.rtol, "n_cases": self.n_cases,
                   "max_abs_error": self.max_abs, "max_rel_error": self.max_rel, "members": self.per_member,
                   "within_float32_rounding": self.within_float32_rounding}
        if self.within_float32_rounding:
            summary["pytorch_float32_error"] = self.pytorch_float32_error
            summary["note"] = self.rounding_note()
        if self.exact_unavailable:
            summary["exact_unavailable"] = self.exact_unavailable
        return summary


@torch.no_grad()
def compare_outputs(member: str, model: torch.nn.Module, exported: torch.nn.Module, images: list[np.ndarray],
                    data: DataConfig, parity: Parity, batch_size: int = 8) -> None:
    """Run both networks on prepared ``images`` (``(1, *spatial)`` each) the way inference does; record.

    A batch with a value outside the tolerance is also run through a float64 copy of ``model`` (made once,
    only then), the exact output the gate then judges both float32 computations by.
    """
    device = torch.device("cpu")
    model.eval()
    step = batch_size if data.fixed_size else 1
    exact_model = None
    for start in range(0, len(images), step):
        batch = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) for i in images[start:start + step]]))
        reference = network_logits(model, batch, data, device).numpy()
        candidate = network_logits(exported, batch, data, device).numpy()
        exact = None
        if not parity.within_tolerance(reference, candidate) and not parity.exact_unavailable:
            try:
                if exact_model is None:
                    exact_model = copy.deepcopy(model).double()
                # rounded back to float32 at the end (at most 6e-8 relative): far below any tolerance
                exact = network_logits(exact_model, batch.double(), data, device).numpy()
            except (RuntimeError, TypeError) as exc:  # an operator without a float64 kernel: the tolerance decides
                parity.exact_unavailable = f"{type(exc).__name__}: {str(exc)[:160]}"
                log.warning("parity gate: no float64 reference for %s (%s); the plain tolerance decides",
                            member, parity.exact_unavailable)
        parity.add(member, reference, candidate, exact)

