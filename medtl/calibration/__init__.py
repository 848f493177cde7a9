"""Post-hoc calibration of class probabilities and conformal prediction sets (docs/calibration.md)."""

from .conformal import ConformalSets, conformal_quantile, fit_conformal
from .fitted import Calibrator, fit_calibrator
from .temperature import apply_temperature, fit_temperature

__all__ = ["Calibrator", "ConformalSets", "apply_temperature", "conformal_quantile", "fit_calibrator",
           "fit_conformal", "fit_temperature"]
