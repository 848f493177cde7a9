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
from ..calibration.outputs import fold_fits


def calibration_enabled(config) -> bool:
    """Whether the arm calibrates its probabilities or builds prediction sets (a multitask arm: when it has a
    classification task; its segmentation task is left as it is)."""
    if config.calibrate.method == "none" and config.conformal.alpha is None:
        return False
    from ..tasks import task_of

    task = task_of(config)
    return any(sub.uses_label for sub in (task.tasks.values() if task.is_composite else [task]))


def calibrated_heads(config, class_names) -> dict[str, list[str]]:
    """``{head: class names}`` of the heads calibration applies to (``""``: a classification run's one head)."""
    from ..tasks import task_of

    task = task_of(config)
    if task.is_composite:
        return {name: list(class_names[name]) for name, sub in task.tasks.items() if sub.uses_label}
    return {"": list(class_names)} if task.uses_label else {}


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
                   sites: dict[str, str]) -> dict:
    """Fit each calibrated head on ``calibration_rows`` (the inner selection split's predictions), apply it to
    ``rows``; returns the fold record's ``calibration`` (one calibrator, or ``{"tasks": {task: calibrator}}``)."""
    fits = {}
    for head, names in calibrated_heads(config, class_names).items():
        mine = [r for r in rows if r.get("task", "") == head]
        theirs = [r for r in calibration_rows if r.get("task", "") == head]
        if not theirs:  # a multitask fold whose selection cases carry none of this task's labels
            continue
        labels = np.array([r["label_index"] for r in theirs], dtype=int)
        calibrator = fit_calibrator(labels, _probabilities(theirs, names),
                                    temperature=config.calibrate.method == "temperature",
                                    alpha=config.conformal.alpha, score=config.conformal.score, by=config.conformal.by,
                                    sites=[sites.get(r["case_id"], "") for r in theirs])
        apply_calibrator(calibrator, mine, names, [sites.get(r["case_id"], "") for r in mine])
        fits[head] = calibrator.to_dict()
    return fits[""] if list(fits) == [""] else {"tasks": fits}


def calibration_notes(arm: str, records: list[dict], alpha: float | None) -> list[str]:
    """One line per arm for what the folds' fits could not do: too few calibration cases for a group's
    threshold (its classes in every set), or a temperature at its search bound (outputs barely informative)."""
    from ..calibration import ConformalSets
    from ..calibration.temperature import BOUNDS

    per_head: dict[str, list[dict]] = {}
    for record in records:
        for head, fit in fold_fits(record).items():
            per_head.setdefault(head, []).append(fit)
    notes = []
    for head, fits in per_head.items():
        who = f"arm '{arm}'" + (f", task {head}" if head else "")
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
            notes.append(f"{who}: conformal sets had too few calibration cases ({need} needed at alpha {alpha}) "
                         f"for {listed}; such a class is in every prediction set of that fold: use more patients, a "
                         "larger train.inner_fraction or a larger alpha")
        at_bound = [f["temperature"] for f in fits if min(abs(f["temperature"] - b) / b for b in BOUNDS) < 1e-3]
        if at_bound:
            notes.append(f"{who}: the temperature reached its search bound in {len(at_bound)} of {len(fits)} "
                         "folds: on those folds' calibration cases the outputs were barely informative")
    return notes
