"""Which prediction sets a predictor may give: a fold model its fold's, an ensemble only those fitted on it; the
exported network divides its logits by the temperature; the folds' fit problems become one line per arm."""

import math
from types import SimpleNamespace

import numpy as np
import torch

from medtl.calibration.outputs import OutputCalibration, output_calibration
from medtl.calibration.scaled import TemperatureScaled
from medtl.workflows.cv_calibration import calibration_notes

FIT = {"temperature": 2.0, "n_cases": 12,
       "conformal": {"alpha": 0.1, "score": "lac", "by": "class", "counts": {"0": 8, "1": 4},
                     "thresholds": {"0": 0.6, "1": None}}}


def member(name, fit=FIT):
    return SimpleNamespace(name=name, record={"calibration": fit} if fit else {})


def test_one_fold_model_uses_its_folds_sets_and_an_ensemble_none_of_them():
    single = output_calibration([member("repeat0_fold1")])
    assert single.temperatures == [2.0] and single.sets.thresholds == {"0": 0.6, "1": math.inf}
    assert "repeat0_fold1" in single.sets_from
    ensemble = output_calibration([member("a"), member("b")])
    assert ensemble.sets is None and "medtl calibrate" in ensemble.note and ensemble.temperatures == [2.0, 2.0]
    fitted = output_calibration([member("a"), member("b")], {"conformal": FIT["conformal"], "n_cases": 40})
    assert fitted.sets is not None and "40 labelled cases" in fitted.sets_from
    assert output_calibration([member("a", None)]) is None
    again = OutputCalibration.from_dict(fitted.to_dict())
    assert again.sets.thresholds == fitted.sets.thresholds and again.temperatures == fitted.temperatures


def test_the_exported_network_divides_its_logits_by_the_temperature():
    network = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    scaled = TemperatureScaled(network, 2.5)
    assert torch.allclose(scaled(x), network(x) / 2.5)
    assert np.allclose(torch.softmax(scaled(x), 1).sum(1).detach().numpy(), 1.0)


def test_the_folds_fit_problems_are_one_line_per_arm():
    bound = {**FIT, "temperature": 20.0}
    notes = calibration_notes("arm", [{"calibration": FIT}, {"calibration": bound}, {}], 0.1)
    assert len(notes) == 2
    assert "class 1: 2 of 2 folds (4-4 cases)" in notes[0] and "9 needed at alpha 0.1" in notes[0]
    assert "search bound in 1 of 2 folds" in notes[1]
