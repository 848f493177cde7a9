"""Label-efficiency curves end to end: every arm at every share, same scored folds, nested labelled subsets."""

import json

import pytest

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set
from tests.integration.test_cv_cli import write_config


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    data = write_radiograph_set(root / "data", n_patients=16, images_per_patient=2, size=48, seed=5)
    config = write_config(root / "cv.yaml", data / "manifest.csv", **{"train.epochs": 1, "cv.folds": 2,
                                                                     "cv.label_fractions": [0.5, 1.0]})
    assert main(["cv", str(config), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def images(run, arm, fold):
    return json.loads((run / "arms" / arm / f"repeat0_fold{fold}" / "fold_images.json").read_text())


def test_every_arm_runs_at_every_share_on_the_same_scored_folds(curve_run):
    metrics = json.loads((curve_run / "metrics.json").read_text())
    assert list(metrics["arms"]) == ["scratch", "linear", "scratch.frac0.5", "linear.frac0.5"]
    for fold in (0, 1):
        full, half = images(curve_run, "scratch", fold), images(curve_run, "scratch.frac0.5", fold)
        assert full["scored"] == half["scored"] == images(curve_run, "linear.frac0.5", fold)["scored"]
        labelled_half = set(half["train"]["patient_keys"]) | set(half["selection"]["patient_keys"])
        labelled_full = set(full["train"]["patient_keys"]) | set(full["selection"]["patient_keys"])
        assert labelled_half < labelled_full and len(labelled_half) == pytest.approx(len(labelled_full) / 2, abs=1)
        # both arms at one share see the same labelled patients: their comparison is paired
        assert images(curve_run, "linear.frac0.5", fold)["train"] == half["train"]


def test_metrics_and_report_carry_the_curves_and_the_comparisons_with_scratch(curve_run):
    metrics = json.loads((curve_run / "metrics.json").read_text())
    curves = metrics["label_efficiency"]
    assert curves["fractions"] == [0.5, 1.0] and set(curves["curves"]) == {"scratch", "linear"}
    points = curves["curves"]["linear"]
    assert [p["fraction"] for p in points] == [0.5, 1.0]
    assert points[0]["labelled_patients"] < points[1]["labelled_patients"]
    assert points[1]["value"] == metrics["arms"]["linear"]["summary"]["auc"]["pooled"]
    assert [(c["fraction"], c["a"], c["b"]) for c in curves["comparisons"]] == [
        (1.0, "linear", "scratch"), (0.5, "linear.frac0.5", "scratch.frac0.5")]
    folds = metrics["arms"]["scratch.frac0.5"]["folds"]
    assert all(f["label_fraction"] == 0.5 for f in folds)
    assert "Label efficiency" in (curve_run / "report.html").read_text()
