"""`medtl cv` through the CLI on tiny data: outputs, schema, honesty guards, determinism, resume."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from medtl.cli import main
from medtl.rundir import RunDir
from medtl.samples.sample_sets import write_radiograph_set


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("data"), n_patients=12, images_per_patient=2, size=48, seed=3)


def write_config(path, manifest, **overrides):
    config = {"task": "classification",
              "data": {"manifest": str(manifest), "dims": 2, "image_size": [48, 48]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 2, "batch_size": 8, "lr": 0.003},
              "cv": {"folds": 3, "bootstrap": 200}, "compare": ["linear"]}
    for key, value in overrides.items():
        section, name = key.split(".")
        config.setdefault(section, {})[name] = value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def reference_run(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    config = write_config(root / "cv.yaml", dataset / "manifest.csv")
    assert main(["cv", str(config), "--out", str(root / "run"), "--quiet"]) == 0
    return config, root / "run"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_outputs_follow_the_contract(reference_run):
    _, run = reference_run
    for name in ("config.yaml", "splits.csv", "metrics.json", "predictions.csv", "report.html", "env.json"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["primary_metric"] == "auc"
    assert set(metrics["summary"]["auc"]) >= {"mean", "std", "ci95"}
    assert {"fold", "n_train", "n_val", "auc"} <= set(metrics["folds"][0])
    assert set(metrics["arms"]) == {"scratch", "linear"}
    comparison = metrics["comparisons"][0]
    assert {"a", "b", "metric", "mean_diff", "ci95", "p_value", "test"} <= set(comparison)
    assert comparison["a"] == "scratch" and comparison["b"] == "linear" and "patient" in comparison["test"]
    predictions = read_csv(run / "predictions.csv")
    assert list(predictions[0]) == ["case_id", "manifest_row", "patient_key", "fold", "arm", "label", "prob_0",
                                    "prob_1"]
    assert len(predictions) == 24 * 2 and len({(r["case_id"], r["arm"]) for r in predictions}) == 48
    assert all(abs(float(r["prob_0"]) + float(r["prob_1"]) - 1) < 1e-5 for r in predictions)
    fold_dirs = list((run / "arms").glob("*/repeat0_fold*"))
    assert len(fold_dirs) == 6 and all((d / "model.safetensors").exists() and (d / "adaptation.json").exists()
                                       for d in fold_dirs)


def test_no_patient_on_both_sides_and_no_patient_ids_in_outputs(reference_run, dataset):
    _, run = reference_run
    splits = read_csv(run / "splits.csv")
    folds_of_patient = {}
    for row in splits:
        folds_of_patient.setdefault(row["patient_key"], set()).add(row["fold"])
    assert all(len(f) == 1 for f in folds_of_patient.values())
    secret_ids = {r["patient_id"] for r in read_csv(dataset / "manifest.csv")}
    for path in run.rglob("*"):
        if path.suffix in (".csv", ".json", ".html", ".yaml"):
            text = path.read_text()
            assert not any(s in text for s in secret_ids), f"patient id in {path.name}"


def test_report_has_the_sections(reference_run):
    html = (reference_run[1] / "report.html").read_text()
    for section in ("Verdict", "Warnings and fallbacks", "Data", "Splits", "Per-fold results", "Comparison",
                    "ROC curves", "Calibration", "Confusion matrix", "Learning curves",
                    "Pretrained weights and adaptation", "Resolved config"):
        assert f"<h2>{section}" in html, section
    assert html.count("data:image/png;base64,") >= 4


def test_same_seed_same_metrics(reference_run, tmp_path):
    config, run = reference_run
    assert main(["cv", str(config), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    assert (tmp_path / "again" / "predictions.csv").read_text() == (run / "predictions.csv").read_text()
    first = json.loads((run / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first["arms"] == second["arms"] and first["comparisons"] == second["comparisons"]


def test_killed_run_resumes_to_identical_metrics(reference_run, tmp_path):
    config, run = reference_run
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "medtl.cli", "cv", str(config), "--out", str(out), "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("arms/*/*/state.pt")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "metrics.json").exists(), "the run must have been interrupted mid-way"
    assert main(["cv", str(config), "--out", str(out), "--quiet"]) == 0
    assert (out / "predictions.csv").read_text() == (run / "predictions.csv").read_text()


def test_changed_config_in_same_folder_is_refused(reference_run, capsys):
    config, run = reference_run
    assert main(["cv", str(config), "--out", str(run), "--set", "train.epochs=5", "--quiet"]) == 2
    assert "different config" in capsys.readouterr().err


def test_too_many_folds_is_a_clear_error(reference_run, capsys, tmp_path):
    config, _ = reference_run
    assert main(["cv", str(config), "--out", str(tmp_path / "r"), "--set", "cv.folds=20", "--quiet"]) == 2
    assert "cannot fill 20 folds" in capsys.readouterr().err


def test_segmentation_cv_smoke(dataset, tmp_path):
    config = write_config(tmp_path / "seg.yaml", dataset / "manifest.csv")
    raw = yaml.safe_load(config.read_text())
    raw["task"] = "segmentation"
    raw["compare"] = []
    config.write_text(yaml.safe_dump(raw))
    assert main(["cv", str(config), "--out", str(tmp_path / "seg"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "seg" / "metrics.json").read_text())
    assert metrics["primary_metric"] == "dice" and 0 <= metrics["summary"]["dice"]["mean"] <= 1
    predictions = read_csv(tmp_path / "seg" / "predictions.csv")
    assert list(predictions[0])[-5:] == ["dice", "iou", "hd95", "truth_empty", "pred_empty"]
    for fold in metrics["folds"]:  # empty-vs-empty cases (dice 1 by convention) never enter the primary figure
        rows = [r for r in predictions if int(r["fold"]) == fold["fold"]]
        lesion = [float(r["dice"]) for r in rows if r["truth_empty"] == "0.0"]
        empty = [r for r in rows if r["truth_empty"] == "1.0"]
        assert fold["dice"] == pytest.approx(sum(lesion) / len(lesion)) if lesion else fold["dice"] is None
        if empty:
            share = sum(r["pred_empty"] == "0.0" for r in empty) / len(empty)
            assert fold["empty_fp_rate"] == pytest.approx(share)
    assert "Segmentation overlays" in (tmp_path / "seg" / "report.html").read_text()


def test_best_inner_selection_runs_and_records_the_epoch(dataset, tmp_path):
    config = write_config(tmp_path / "inner.yaml", dataset / "manifest.csv", **{"train.selection": "best_inner",
                                                                                "train.epochs": 3})
    raw = yaml.safe_load(config.read_text())
    raw["compare"] = []
    config.write_text(yaml.safe_dump(raw))
    assert main(["cv", str(config), "--out", str(tmp_path / "inner"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "inner" / "metrics.json").read_text())
    assert all(f["n_inner"] > 0 and 0 <= f["selected_epoch"] < 3 for f in metrics["folds"])
    for fold in RunDir(tmp_path / "inner").folds("scratch"):
        fold_dir = fold.path
        history = fold.read_done()["history"]
        scores = [h["inner_score"] for h in history]
        record = next(f for f in metrics["folds"] if f"fold{f['fold']}" in fold_dir.name)
        if any(s is not None for s in scores):  # the chosen epoch is the best inner score
            assert scores[record["selected_epoch"]] == max(s for s in scores if s is not None)
        else:  # undefined inner score: last epoch, and the report says so
            assert record["selected_epoch"] == 2
            assert any("inner-split score undefined" in w for w in metrics["warnings"])


def test_the_run_names_its_primary_comparison_and_the_multiplicity(reference_run):
    _, run = reference_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["multiplicity"]["primary"] == {"a": "scratch", "b": "linear", "metric": "auc"}
    assert metrics["comparisons"][0]["role"] == "primary"
    assert "(primary comparison)" in (run / "report.html").read_text()


def test_every_prediction_joins_back_to_its_manifest_line(reference_run, dataset):
    """Issue 28.13: without a case_id column, predictions.csv carried only an opaque hash."""
    _, run = reference_run
    manifest = read_csv(dataset / "manifest.csv")
    for row in read_csv(run / "predictions.csv"):
        line = manifest[int(row["manifest_row"]) - 2]  # line 1 is the header
        assert line["label"] == row["label"]
    assert len({r["manifest_row"] for r in read_csv(run / "predictions.csv")}) == len(manifest)
