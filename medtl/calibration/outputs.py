"""How a trained run's (or an export's) outputs are calibrated when it predicts.

Each fold model's probabilities are scaled by its own temperature (fitted on its fold's
inner selection split). Prediction sets need thresholds fitted on the very output that is
predicted: a single fold model (``--fold K``) has its fold's; an ensemble (the mean of the
fold models) has none of its own, and gets them from ``medtl calibrate RUN MANIFEST``, which
fits them on the ensemble's outputs for a labelled calibration manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conformal import ConformalSets
from .fitted import Calibrator


@dataclass
class OutputCalibration:
    """Each member's temperature, and the prediction sets of the combined probabilities (``None``: no sets)."""

    temperatures: list[float]
    sets: ConformalSets | None
    sets_from: str  # where the thresholds were fitted (said in predict.json and the model card)
    note: str | None = None  # why there are no sets although the run made them

    def to_dict(self) -> dict:
        """JSON form (``predict.json``, ``model.json``)."""
        return {"temperatures": self.temperatures, "sets": None if self.sets is None else self.sets.to_dict(),
                "sets_from": self.sets_from, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict) -> "OutputCalibration":
        """Read ``to_dict``'s form."""
        return cls([float(t) for t in data["temperatures"]],
                   None if data.get("sets") is None else ConformalSets.from_dict(data["sets"]),
                   data.get("sets_from", ""), data.get("note"))


def fold_fits(record: dict) -> dict[str, dict]:
    """``{head: fitted calibrator}`` of a fold record (``""`` for a classification run; each task of a multitask
    run, whose record keeps ``{"tasks": {...}}``)."""
    fit = record.get("calibration")
    if not fit:
        return {}
    return dict(fit["tasks"]) if "tasks" in fit else {"": fit}


def output_calibration(members: list, ensemble_sets: dict | None = None, head: str = "") -> OutputCalibration | None:
    """From the members' fold records (``record["calibration"]``; ``head``: a multitask run's task) and, for an
    ensemble, the thresholds of ``medtl calibrate`` (``{"conformal": ..., "n_cases": ...}``); ``None`` when the
    run calibrates nothing."""
    fits = [fold_fits(m.record).get(head) for m in members]
    if not any(fits) and ensemble_sets is None:
        return None
    calibrators = [Calibrator.from_dict(f) if f else Calibrator() for f in fits]
    temperatures = [c.temperature for c in calibrators]
    if ensemble_sets is not None:
        return OutputCalibration(temperatures, ConformalSets.from_dict(ensemble_sets["conformal"]),
                                 f"medtl calibrate: {ensemble_sets.get('n_cases', '?')} labelled cases scored by "
                                 f"this {'ensemble' if len(members) > 1 else 'model'}")
    if len(members) == 1 and calibrators[0].conformal is not None:
        return OutputCalibration(temperatures, calibrators[0].conformal,
                                 f"fold model {members[0].name}: its fold's inner selection split "
                                 f"({calibrators[0].n_cases} cases)")
    made_sets = any(c.conformal is not None for c in calibrators)
    note = (f"no prediction sets: each fold's thresholds hold for that fold model alone, not for the mean of "
            f"{len(members)} fold models; fit the ensemble's with `medtl calibrate RUN MANIFEST --out DIR` and "
            "predict with --calibration DIR, or predict with one fold (--fold K)") if made_sets else None
    return OutputCalibration(temperatures, None, "", note)
