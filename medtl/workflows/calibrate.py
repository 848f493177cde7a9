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


def _heads(trained) -> dict[str, list[str]]:
    """``{head: class names}`` of the classification heads (``""``: a classification run's one head)."""
    if trained.task.is_composite:
        return {name: list(names) for name, (task, names, _) in trained.heads().items() if task.uses_label}
    return {"": list(trained.class_names)} if trained.task.uses_label else {}


def calibrate_run(run_dir: str | Path, manifest: str | Path, out: str | Path, options, arm: str | None = None,
                  fold: int | None = None, alpha: float | None = None, score: str | None = None,
                  by: str | None = None) -> dict:
    """Fit the thresholds of ``arm``'s ensemble (or one ``fold``) on ``manifest``, for each classification head
    (a multitask run: each classification task, on the cases with its label); returns calibration.json."""
    from ..models.trained import load_trained_run
    from ..predict.engine import predict_items
    from ..predict.items import read_inputs
    from ..rundir import check_output_folder

    check_output_folder(out, "predict")
    trained = load_trained_run(run_dir, arm=arm, fold=fold)
    heads = _heads(trained)
    if not heads:
        raise InputError(f"arm '{trained.arm}' is a {trained.task_name} model: it has no class probabilities to "
                         "build prediction sets from")
    conformal = trained.config.conformal
    alpha = alpha if alpha is not None else conformal.alpha
    if alpha is None:
        raise InputError("no coverage target: the run's config has no conformal.alpha; give --alpha (e.g. 0.1)")
    # the members' temperatures, no sets of their own
    trained.calibration = output_calibration(trained.members) if "" in heads else None
    trained.task_calibration = {h: c for h in heads if h and (c := output_calibration(trained.members, head=h))}
    inputs = read_inputs(Path(manifest), trained.task_name, targets=True, progress=options.progress,
                         tasks=trained.config.tasks)
    outcome = predict_items(trained, inputs, out, options, truth=True)
    overlap = training_overlap(RunDir(trained.path).training_images, outcome.records)
    if overlap is not None and overlap.copies:
        raise InputError(f"{overlap.copies} of {len(outcome.records)} calibration case(s) are images this run trained "
                         f"or validated on ({overlap.describe()}): thresholds fitted on them would be too small; use "
                         "cases new to the run (no calibration.json was written)")
    site_of = {i.key: i.site for i in inputs.items}
    fitted = {}
    for head, names in heads.items():
        entries = [(r, r["tasks"][head] if head else r) for r in outcome.records]
        labelled = [(r, e) for r, e in entries if e.get("label") in names]
        if not labelled:
            raise InputError(f"no case of {manifest} has a label" + (f" for task {head}" if head else "") +
                             f" that the model knows ({names}); see {outcome.out}/skipped.csv")
        sets = fit_conformal(np.array([names.index(e["label"]) for _, e in labelled]),
                             np.array([e["probs"] for _, e in labelled], dtype=np.float64), alpha,
                             score or conformal.score, by or conformal.by, [site_of.get(r["key"], "") for r, _ in labelled])
        fitted[head] = {"n_cases": len(labelled), "n_patients": len({r["patient_key"] for r, _ in labelled}),
                        "conformal": sets.to_dict(), "notes": sets.notes}
    result = {"medtl_version": __version__, "model_id": trained.model_id, "arm": trained.arm,
              "members": [m.name for m in trained.members],
              **(fitted[""] if list(fitted) == [""] else {"tasks": fitted,
                                                         "notes": [n for f in fitted.values() for n in f["notes"]]}),
              "training_overlap_near": overlap.near if overlap is not None else None}
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
    if "tasks" in data:  # a multitask run: each classification task's thresholds
        trained.task_calibration = {name: output_calibration(trained.members, fitted, head=name)
                                    for name, fitted in data["tasks"].items()}
    else:
        trained.calibration = output_calibration(trained.members, data)
    return trained
