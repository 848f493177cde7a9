"""calibrate / conformal on a multitask run (issue 29): each classification task calibrated on its own rows, the
segmentation task and its control untouched; predict, calibrate and evaluate per task."""

import csv
import json

import numpy as np
import pytest
import yaml

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set

pytestmark = pytest.mark.heavy  # the heavy tier: `make test-heavy` (see the Makefile)


def rows_of(run):
    with open(run / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_multitask_run_calibrates_each_classification_task_and_leaves_the_segmentation_task(tmp_path):
    from medtl.samples.sample_sets import write_multitask_manifest

    root = write_radiograph_set(tmp_path / "xr", n_patients=10, images_per_patient=2, size=32, seed=4)
    manifest = write_multitask_manifest(root)
    raw = {"task": "multitask", "data": {"manifest": str(manifest), "dims": 2, "image_size": [32, 32]},
           "tasks": [{"name": "nodule", "kind": "classification", "column": "label"},
                     {"name": "lesion", "kind": "segmentation", "column": "mask"}],
           "model": {"backbone": "tiny-resnet", "pretrained": "none"},
           "train": {"epochs": 1, "batch_size": 4}, "cv": {"folds": 2, "bootstrap": 100},
           "calibrate": {"method": "temperature"}, "conformal": {"alpha": 0.2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["cv", str(tmp_path / "c.yaml"), "--out", str(run), "--quiet"]) == 0
    rows = rows_of(run)
    nodule = [r for r in rows if r["task"] == "nodule"]
    lesion = [r for r in rows if r["task"] == "lesion"]
    assert nodule and all(r["raw_prob_1"] and r["prediction_set"] for r in nodule)
    assert lesion and not any(r["raw_prob_1"] or r["prediction_set"] for r in lesion)
    arms = json.loads((run / "metrics.json").read_text())["arms"]
    assert set(arms["multitask"]["calibration"]["tasks"]) == {"nodule"}
    assert "coverage" in arms["nodule-only"]["calibration"]["tasks"]["nodule"]
    control = json.loads((run / "arms" / "lesion-only" / "repeat0_fold0" / "done.json").read_text())["record"]
    assert "calibration" not in control  # the segmentation control has no class probabilities to calibrate
    warnings = json.loads((run / "metrics.json").read_text())["warnings"]
    assert not any("arm 'multitask': arm 'multitask'" in w for w in warnings)
    assert "multitask, task nodule" in (run / "report.html").read_text()
    fold = json.loads((run / "arms" / "multitask" / "repeat0_fold0" / "done.json").read_text())["record"]
    assert set(fold["calibration"]["tasks"]) == {"nodule"}

    assert main(["predict", str(run), str(manifest), "--out", str(tmp_path / "p"), "--fold", "0", "--quiet"]) == 0
    predicted = {r["case_id"]: r for r in rows_of(tmp_path / "p")}
    for row in [r for r in nodule if r["fold"] == "0" and r["arm"] == "multitask"]:
        assert predicted[row["case_id"]]["nodule.prediction_set"] == row["prediction_set"]
        assert float(predicted[row["case_id"]]["nodule.prob_1"]) == pytest.approx(float(row["prob_1"]), abs=1e-5)

    # the ensemble's sets per classification task, from new labelled cases; then external coverage per task
    new = write_multitask_manifest(write_radiograph_set(tmp_path / "new", n_patients=6, images_per_patient=2,
                                                        size=40, seed=41))
    assert main(["calibrate", str(run), str(new), "--out", str(tmp_path / "cal"), "--quiet"]) == 0
    fitted = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert set(fitted["tasks"]) == {"nodule"} and fitted["tasks"]["nodule"]["n_cases"] > 0
    other = write_multitask_manifest(write_radiograph_set(tmp_path / "other", n_patients=6, images_per_patient=2,
                                                          size=40, seed=43))
    assert main(["evaluate", str(run), str(other), "--out", str(tmp_path / "ev"), "--calibration",
                 str(tmp_path / "cal"), "--quiet"]) == 0
    evaluated = [r for r in rows_of(tmp_path / "ev") if r["nodule.label"]]
    coverage = json.loads((tmp_path / "ev" / "metrics.json").read_text())["calibration"]["tasks"]["nodule"]["coverage"]
    assert coverage["n"] == len(evaluated) and coverage["rate"] == pytest.approx(
        np.mean([r["nodule.label"] in r["nodule.prediction_set"].split("|") for r in evaluated]))
