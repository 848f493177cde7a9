"""Calibration inside a cv fold: fitted on the fold's inner selection split, applied to its scored rows.

The scored rows then hold the calibrated ``prob_<class>`` (what every metric reads), the
model's own ``raw_prob_<class>`` (the "before" of the report), and with conformal sets the
``prediction_set`` (class names joined by ``|``) and its ``set_size``. The fold's record keeps
the fitted temperature and thresholds (``calibration``), which is what ``medtl predict``
applies to a fold model's outputs.
"""

from __future__ import annotations

import numpy as np

from ..calibration import Calibrator, fit_calibrator


def calibration_enabled(config) -> bool:
    """Whether the arm calibrates its probabilities or builds prediction sets."""
    return config.calibrate.method != "none" or config.conformal.alpha is not None


def _probabilities(rows: list[dict], class_names, prefix: str = "prob_") -> np.ndarray:
    return np.array([[r[f"{prefix}{n}"] for n in class_names] for r in rows], dtype=np.float64)


def apply_calibrator(calibrator: Calibrator, rows: list[dict], class_names, sites: list[str] | None = None) -> None:
    """Rewrite ``rows`` in place: calibrated ``prob_*``, the model's ``raw_prob_*``, the prediction set."""
    raw = _probabilities(rows, class_names)
    calibrated = calibrator.probabilities(raw)
    sets = calibrator.sets(calibrated, sites)
    for i, row in enumerate(rows):
        for k, name in enumerate(class_names):
            row[f"raw_prob_{name}"] = float(raw[i, k])
            row[f"prob_{name}"] = float(calibrated[i, k])
        if sets is not None:
            row["prediction_set"] = "|".join(str(class_names[k]) for k in sets[i])
            row["set_size"] = len(sets[i])


def calibrate_fold(config, rows: list[dict], calibration_rows: list[dict], class_names,
                   sites: list[str], calibration_sites: list[str]) -> Calibrator:
    """Fit on ``calibration_rows`` (the inner selection split's predictions), apply to ``rows``."""
    labels = np.array([r["label_index"] for r in calibration_rows], dtype=int)
    calibrator = fit_calibrator(labels, _probabilities(calibration_rows, class_names),
                                temperature=config.calibrate.method == "temperature", alpha=config.conformal.alpha,
                                score=config.conformal.score, by=config.conformal.by, sites=calibration_sites)
    apply_calibrator(calibrator, rows, class_names, sites)
    return calibrator


def calibration_notes(arm: str, records: list[dict], alpha: float | None) -> list[str]:
    """One line per arm for what the folds' fits could not do: too few calibration cases for a group's
    threshold (its classes in every set), or a temperature at its search bound (outputs barely informative)."""
    from ..calibration import ConformalSets
    from ..calibration.temperature import BOUNDS

    fits = [r["calibration"] for r in records if "calibration" in r]
    notes = []
    short: dict[str, list[int]] = {}
    for fit in fits:
        if fit.get("conformal"):
            sets = ConformalSets.from_dict(fit["conformal"])
            for group, threshold in sets.thresholds.items():
                if threshold == float("inf"):
                    short.setdefault(group, []).append(sets.counts.get(group, 0))
    if short and alpha is not None:
        need = int(np.ceil(1 / alpha)) - 1
        listed = "; ".join(f"{'class' if fits[0]['conformal']['by'] == 'class' else 'group'} {g}: {len(c)} of "
                           f"{len(fits)} folds ({min(c)}-{max(c)} cases)" for g, c in sorted(short.items()))
        notes.append(f"arm '{arm}': conformal sets had too few calibration cases ({need} needed at alpha {alpha}) "
                     f"for {listed}; such a class is in every prediction set of that fold: use more patients, a "
                     "larger train.inner_fraction or a larger alpha")
    at_bound = [f["temperature"] for f in fits if min(abs(f["temperature"] - b) / b for b in BOUNDS) < 1e-3]
    if at_bound:
        notes.append(f"arm '{arm}': the temperature reached its search bound in {len(at_bound)} of {len(fits)} "
                     "folds: on those folds' calibration cases the outputs were barely informative")
    return notes
