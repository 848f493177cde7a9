"""``medtl calibrate RUN MANIFEST --out DIR``: prediction-set thresholds for the model ``medtl predict`` runs.

A run's fold models each have thresholds from their fold's inner selection split, which
hold for that fold model alone. The ensemble (the mean of the fold models, what ``predict``
outputs) needs its own: this command predicts a labelled calibration manifest with exactly
that model (each member's temperature applied), fits the conformal thresholds on its
outputs, and writes ``DIR/calibration.json`` beside the predictions it was fitted on.
``medtl predict / evaluate / export RUN ... --calibration DIR`` then use them. The
calibration cases must be new to the run: a copy of a training image (identical pixels or
network input) is refused, since every fold model but one has seen it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._version import __version__
from ..calibration import fit_conformal
from ..calibration.outputs import output_calibration
from ..data.provenance import training_overlap
from ..errors import InputError
from ..plumbing.atomic import write_json
from ..rundir import RunDir

CALIBRATION_FILE = "calibration.json"


def calibrate_run(run_dir: str | Path, manifest: str | Path, out: str | Path, options, arm: str | None = None,
                  fold: int | None = None, alpha: float | None = None, score: str | None = None,
                  by: str | None = None) -> dict:
    """Fit the thresholds of ``arm``'s ensemble (or one ``fold``) on ``manifest``; returns calibration.json."""
    from ..models.trained import load_trained_run
    from ..predict.engine import predict_items
    from ..predict.items import read_inputs
    from ..rundir import check_output_folder

    check_output_folder(out, "predict")
    trained = load_trained_run(run_dir, arm=arm, fold=fold)
    if not trained.task.uses_label or trained.task.is_composite:
        raise InputError(f"arm '{trained.arm}' is a {trained.task_name} model: `medtl calibrate` fits the sets of "
                         "a classification run's ensemble (a multitask run's tasks: predict with --fold K, which uses "
                         "that fold's sets)")
    conformal = trained.config.conformal
    alpha = alpha if alpha is not None else conformal.alpha
    if alpha is None:
        raise InputError("no coverage target: the run's config has no conformal.alpha; give --alpha (e.g. 0.1)")
    trained.calibration = output_calibration(trained.members)  # the members' temperatures, no sets of its own
    inputs = read_inputs(Path(manifest), trained.task_name, targets=True, progress=options.progress)
    outcome = predict_items(trained, inputs, out, options, truth=True)
    records = [r for r in outcome.records if r.get("label") in trained.class_names]
    if not records:
        raise InputError(f"no labelled case of {manifest} could be predicted; see {outcome.out}/skipped.csv")
    overlap = training_overlap(RunDir(trained.path).training_images, records)
    if overlap is not None and overlap.copies:
        raise InputError(f"{overlap.copies} of {len(records)} calibration case(s) are images this run trained or "
                         f"validated on ({overlap.describe()}): thresholds fitted on them would be too small; use "
                         "cases new to the run (no calibration.json was written)")
    labels = np.array([trained.class_names.index(r["label"]) for r in records])
    probabilities = np.array([r["probs"] for r in records], dtype=np.float64)
    sites = [next((i.site for i in inputs.items if i.key == r["key"]), "") for r in records]
    sets = fit_conformal(labels, probabilities, alpha, score or conformal.score, by or conformal.by, sites)
    result = {"medtl_version": __version__, "model_id": trained.model_id, "arm": trained.arm,
              "members": [m.name for m in trained.members], "n_cases": len(records),
              "n_patients": len({r["patient_key"] for r in records}), "conformal": sets.to_dict(),
              "notes": sets.notes, "training_overlap_near": overlap.near if overlap is not None else None}
    write_json(Path(out) / CALIBRATION_FILE, result)
    return result


def with_calibration(trained, folder: str | Path | None):
    """``trained`` with the thresholds ``medtl calibrate`` fitted for exactly this model (``--calibration DIR``)."""
    if folder is None:
        return trained
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        raise InputError(f"--calibration {folder} holds no {CALIBRATION_FILE}; make it with `medtl calibrate RUN "
                         "MANIFEST --out DIR`")
    data = json.loads(path.read_text())
    if data.get("model_id") != trained.model_id:
        raise InputError(f"--calibration {folder} was fitted for model {data.get('model_id')}, not {trained.model_id} "
                         "(another arm, fold or run): thresholds hold only for the model they were fitted on")
    trained.calibration = output_calibration(trained.members, data)
    return trained
