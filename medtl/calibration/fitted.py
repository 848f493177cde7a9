"""What one fold (or one calibration manifest) fitted: a temperature and conformal thresholds, applied together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conformal import ConformalSets, fit_conformal
from .temperature import apply_temperature, fit_temperature


@dataclass
class Calibrator:
    """``temperature`` (1.0: none) then ``conformal`` sets (``None``: none) on the calibrated probabilities."""

    temperature: float = 1.0
    conformal: ConformalSets | None = None
    n_cases: int = 0  # calibration cases it was fitted on

    def probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return apply_temperature(probabilities, self.temperature) if self.temperature != 1.0 else \
            np.asarray(probabilities, dtype=np.float64)

    def sets(self, probabilities: np.ndarray, sites: list[str] | None = None) -> list[list[int]] | None:
        """Prediction sets of already calibrated probabilities (``None`` without conformal)."""
        return None if self.conformal is None else self.conformal.sets(probabilities, sites)

    def to_dict(self) -> dict:
        """JSON form (``done.json``)."""
        return {"temperature": self.temperature, "n_cases": self.n_cases,
                "conformal": None if self.conformal is None else self.conformal.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibrator":
        """Read ``to_dict``'s form."""
        conformal = data.get("conformal")
        return cls(float(data.get("temperature", 1.0)), None if conformal is None else
                   ConformalSets.from_dict(conformal), int(data.get("n_cases", 0)))


def fit_calibrator(labels: np.ndarray, probabilities: np.ndarray, temperature: bool, alpha: float | None,
                   score: str = "lac", by: str = "class", sites: list[str] | None = None) -> Calibrator:
    """Fit on calibration cases: the temperature first, then the conformal thresholds on the calibrated outputs."""
    t = fit_temperature(labels, probabilities) if temperature else 1.0
    calibrated = apply_temperature(probabilities, t) if temperature else np.asarray(probabilities, dtype=np.float64)
    conformal = None if alpha is None else fit_conformal(labels, calibrated, alpha, score, by, sites)
    return Calibrator(t, conformal, int(len(labels)))
