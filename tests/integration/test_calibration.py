"""calibrate / conformal in a cv run (issue 29): fitted on each fold's inner selection split, never on a scored
case; calibrated and raw probabilities and the prediction set in predictions.csv; before/after and coverage in
metrics.json and the report."""

import csv
import json

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set


@pytest.fixture(scope="module")
def new_cases(tmp_path_factory):
    """Labelled cases the run never saw (another seed: other patients, other images)."""
    return write_radiograph_set(tmp_path_factory.mktemp("new"), n_patients=16, images_per_patient=2, size=40,
                                seed=31) / "manifest.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cal")
    data = write_radiograph_set(root / "data", n_patients=24, images_per_patient=2, size=40, seed=8)
    raw = {"task": "classification", "data": {"manifest": str(data / "manifest.csv"), "dims": 2, "image_size": 40},
           "model": {"backbone": "tiny-resnet", "pretrained": "none"},
           "train": {"epochs": 2, "batch_size": 8, "lr": 0.003}, "cv": {"folds": 3, "bootstrap": 100},
           "calibrate": {"method": "temperature"}, "conformal": {"alpha": 0.2}}
    (root / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["cv", str(root / "c.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def rows_of(run):
    with open(run / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_predictions_hold_calibrated_and_raw_probabilities_and_the_prediction_set(run):
    rows = rows_of(run)
    assert {"prob_0", "prob_1", "raw_prob_0", "raw_prob_1", "prediction_set", "set_size"} <= set(rows[0])
    assert [r["prob_1"] for r in rows] != [r["raw_prob_1"] for r in rows]  # a temperature was applied
    for fold in {r["fold"] for r in rows}:  # within a fold (one temperature) every ranking is kept: AUC unchanged
        mine = [r for r in rows if r["fold"] == fold]
        labels = [int(r["label"]) for r in mine]
        assert roc_auc_score(labels, [float(r["prob_1"]) for r in mine]) == pytest.approx(
            roc_auc_score(labels, [float(r["raw_prob_1"]) for r in mine]), abs=1e-12)
    assert all(int(r["set_size"]) == len([c for c in r["prediction_set"].split("|") if c]) for r in rows)
    metrics = json.loads((run / "metrics.json").read_text())
    labels = [int(r["label"]) for r in rows]
    block = metrics["arms"]["scratch"]["calibration"]  # pooled over folds, before and after, both reported
    assert block["before"]["pooled_auc"]["value"] == pytest.approx(
        roc_auc_score(labels, [float(r["raw_prob_1"]) for r in rows]), abs=1e-9)
    assert block["after"]["pooled_auc"]["value"] == pytest.approx(
        metrics["arms"]["scratch"]["summary"]["auc"]["pooled"], abs=1e-6)


def test_no_scored_case_is_ever_in_its_folds_calibration_set(run):
    """The audit anyone can make from the run folder: the calibration set is the fold's selection role."""
    folds = sorted((run / "arms" / "scratch").glob("repeat*_fold*"))
    assert len(folds) == 3
    for fold in folds:
        images = json.loads((fold / "fold_images.json").read_text())
        record = json.loads((fold / "done.json").read_text())["record"]
        selection, scored = images["selection"], images["scored"]
        assert record["calibration"]["n_cases"] == len(selection["image_hashes"]) > 0
        assert not set(selection["patient_keys"]) & set(scored["patient_keys"])
        assert not set(selection["image_hashes"]) & set(scored["image_hashes"])
        assert not set(selection["patient_keys"]) & set(images["train"]["patient_keys"])


def test_metrics_and_report_show_before_after_and_coverage(run):
    block = json.loads((run / "metrics.json").read_text())["arms"]["scratch"]["calibration"]
    for when in ("before", "after"):
        assert set(block[when]) == {"ece", "ece_equal_mass", "brier", "nll", "pooled_auc"}
        assert all(len(v["ci95"]) == 2 for v in block[when].values())
    coverage = block["coverage"]
    rows = rows_of(run)
    covered = [r["label"] in r["prediction_set"].split("|") for r in rows]
    assert coverage["rate"] == pytest.approx(np.mean(covered)) and coverage["target"] == pytest.approx(0.8)
    assert set(coverage["per_class"]) == {"0", "1"}
    assert block["triage"]["referral_rate"] == pytest.approx(np.mean([r["set_size"] != "1" for r in rows]))
    accepted = [r for r in rows if r["set_size"] == "1"]
    assert block["triage"]["error_among_accepted"]["rate"] == (
        pytest.approx(np.mean([r["label"] != r["prediction_set"] for r in accepted])) if accepted else None)
    assert [p["abstention"] for p in block["risk_coverage"]] == pytest.approx([0.05 * k for k in range(11)])
    report = (run / "report.html").read_text()
    assert "Calibration and prediction sets" in report and "exchangeable" in report and "risk-coverage" in report


def test_calibration_of_a_task_without_class_probabilities_is_refused(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"task": "segmentation", "calibrate": {"method": "temperature"}}))
    assert main(["config", str(config)]) == 2
    assert "calibrate / conformal apply to class probabilities" in capsys.readouterr().err


def test_what_the_fits_could_not_do_is_one_line_per_arm(run):
    """A note per fold flooded the warnings (20 lines on the demo); each arm gets one line with the fold counts."""
    warnings = json.loads((run / "metrics.json").read_text())["warnings"]
    assert sum("too few calibration cases" in w for w in warnings) <= 1
    assert not any(w.startswith("scratch repeat") and "conformal" in w for w in warnings)


def test_predict_with_one_fold_gives_that_folds_calibrated_probabilities_and_sets(run, tmp_path):
    """The same fold model, the same temperature and thresholds: predict --fold K equals the cv rows of fold K."""
    manifest = yaml.safe_load((run / "config.yaml").read_text())["data"]["manifest"]
    assert main(["predict", str(run), manifest, "--out", str(tmp_path / "p"), "--fold", "1", "--quiet"]) == 0
    predicted = {r["case_id"]: r for r in rows_of(tmp_path / "p")}
    scored = [r for r in rows_of(run) if r["fold"] == "1"]
    assert scored
    for row in scored:
        mine = predicted[row["case_id"]]
        assert float(mine["prob_1"]) == pytest.approx(float(row["prob_1"]), abs=1e-5)
        assert mine["prediction_set"] == row["prediction_set"]
    summary = json.loads((tmp_path / "p" / "predict.json").read_text())["calibration"]
    assert "fold model repeat0_fold1" in summary["sets_from"]


@pytest.mark.heavy
def test_an_ensemble_has_no_sets_until_calibrated_on_new_cases(run, new_cases, tmp_path, capsys):
    manifest = yaml.safe_load((run / "config.yaml").read_text())["data"]["manifest"]
    assert main(["predict", str(run), manifest, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert "prediction_set" not in rows_of(tmp_path / "a")[0]
    assert "medtl calibrate" in json.loads((tmp_path / "a" / "predict.json").read_text())["calibration"]["note"]

    # thresholds fitted on the training images would be too small: refused, nothing to use
    assert main(["calibrate", str(run), manifest, "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "images this run trained or validated on" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "calibration.json").exists()

    assert main(["calibrate", str(run), str(new_cases), "--out", str(tmp_path / "cal"), "--quiet"]) == 0
    fitted = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert fitted["n_cases"] == 32 and fitted["conformal"]["by"] == "class" and fitted["conformal"]["alpha"] == 0.2
    assert main(["predict", str(run), manifest, "--out", str(tmp_path / "b"), "--calibration", str(tmp_path / "cal"),
                 "--quiet"]) == 0
    thresholds = {k: (float("inf") if v is None else v) for k, v in fitted["conformal"]["thresholds"].items()}
    for row in rows_of(tmp_path / "b"):  # LAC, per class: class k is in the set iff 1 - p_k <= its threshold
        expected = [k for k in ("0", "1") if 1 - float(row[f"prob_{k}"]) <= thresholds[k] + 1e-6]
        assert [c for c in row["prediction_set"].split("|") if c] == expected and int(row["set_size"]) == len(expected)

    # external validation of the calibrated ensemble: the coverage on cases the sets were not fitted on
    other = write_radiograph_set(tmp_path / "other", n_patients=10, images_per_patient=2, size=40, seed=57)
    assert main(["evaluate", str(run), str(other / "manifest.csv"), "--out", str(tmp_path / "ev"), "--calibration",
                 str(tmp_path / "cal"), "--quiet"]) == 0
    external = json.loads((tmp_path / "ev" / "metrics.json").read_text())["calibration"]
    evaluated = rows_of(tmp_path / "ev")
    assert external["coverage"]["n"] == len(evaluated) == 20 and "before" not in external
    assert external["coverage"]["rate"] == pytest.approx(np.mean([r["label"] in r["prediction_set"].split("|")
                                                                  for r in evaluated]))

    # the thresholds hold only for the model they were fitted on
    assert main(["predict", str(run), manifest, "--out", str(tmp_path / "c"), "--fold", "0", "--calibration",
                 str(tmp_path / "cal"), "--quiet"]) == 2
    assert "fitted for model" in capsys.readouterr().err


@pytest.mark.heavy
def test_an_export_carries_the_calibration_and_predicts_as_the_run_does(run, new_cases, tmp_path):
    """Temperatures inside the ONNX networks (the parity gate covers them), thresholds in model.json; predict on
    the export equals predict on the run with the same calibration; the card states the guarantee."""
    manifest = yaml.safe_load((run / "config.yaml").read_text())["data"]["manifest"]
    assert main(["calibrate", str(run), str(new_cases), "--out", str(tmp_path / "cal"), "--quiet"]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "x"), "--calibration", str(tmp_path / "cal"),
                 "--quiet"]) == 0
    model = json.loads((tmp_path / "x" / "model.json").read_text())
    assert model["parity"]["passed"] and len(model["calibration"]["temperatures_in_network"]) == 3
    assert model["calibration"]["sets"]["alpha"] == 0.2
    assert main(["predict", str(tmp_path / "x"), manifest, "--out", str(tmp_path / "e"), "--quiet"]) == 0
    assert main(["predict", str(run), manifest, "--out", str(tmp_path / "r"), "--calibration", str(tmp_path / "cal"),
                 "--quiet"]) == 0
    exported, direct = rows_of(tmp_path / "e"), rows_of(tmp_path / "r")
    assert [r["case_id"] for r in exported] == [r["case_id"] for r in direct]
    for a, b in zip(exported, direct):
        assert float(a["prob_1"]) == pytest.approx(float(b["prob_1"]), abs=1e-5)
        assert a["prediction_set"] == b["prediction_set"]
    card = (tmp_path / "x" / "model_card.md").read_text()
    assert "Calibration and prediction sets" in card and "exchangeable" in card and "a new site" in card
    assert "Coverage measured out-of-fold" in card
    spec = json.loads((tmp_path / "x" / "preprocessing.json").read_text())
    assert "calibration temperature" in spec["output_geometry"]
    # the thresholds decide the sets: the model id covers them, so an edit is refused
    model["calibration"]["sets"]["thresholds"]["1"] = 0.99
    (tmp_path / "x" / "model.json").write_text(json.dumps(model))
    assert main(["predict", str(tmp_path / "x"), manifest, "--out", str(tmp_path / "t"), "--quiet"]) == 2
    assert not (tmp_path / "t").exists()


def test_with_training_seeds_each_case_counts_once_in_the_coverage(tmp_path):
    """cv.seeds repeats every case once per seed: counted N times, the coverage CI would be too narrow."""
    data = write_radiograph_set(tmp_path / "data", n_patients=12, images_per_patient=2, size=32, seed=3)
    raw = {"task": "classification", "data": {"manifest": str(data / "manifest.csv"), "dims": 2, "image_size": 32},
           "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 8},
           "cv": {"folds": 2, "bootstrap": 100, "seeds": 2}, "conformal": {"alpha": 0.2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["cv", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    block = json.loads((tmp_path / "run" / "metrics.json").read_text())["arms"]["scratch"]["calibration"]
    assert block["coverage"]["n"] == block["n_cases"] == 24 and "seed 0" in block["scope"]


def test_site_conditional_sets_use_the_manifests_site_column(run, new_cases, tmp_path):
    """by: site thresholds are per site: predict reads the site of each case from the manifest."""
    with open(new_cases, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        row["site"] = "north" if i % 2 else "south"
        row["image"] = str((new_cases.parent / row["image"]).resolve())
        if row.get("mask"):
            row["mask"] = str((new_cases.parent / row["mask"]).resolve())
    sited = tmp_path / "sited.csv"
    with open(sited, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["calibrate", str(run), str(sited), "--out", str(tmp_path / "cal"), "--by", "site", "--quiet"]) == 0
    fitted = json.loads((tmp_path / "cal" / "calibration.json").read_text())["conformal"]
    assert set(fitted["thresholds"]) == {"north", "south"}
    assert main(["predict", str(run), str(sited), "--out", str(tmp_path / "p"), "--calibration", str(tmp_path / "cal"),
                 "--quiet"]) == 0
    limits = {k: (float("inf") if v is None else v) for k, v in fitted["thresholds"].items()}
    site_of = {str(i + 2): r["site"] for i, r in enumerate(rows)}  # manifest line -> site
    for row in rows_of(tmp_path / "p"):  # LAC by site: class k is in the set iff 1 - p_k <= the case's site threshold
        limit = limits[site_of[row["manifest_row"]]]
        expected = [k for k in ("0", "1") if 1 - float(row[f"prob_{k}"]) <= limit + 1e-6]
        assert [c for c in row["prediction_set"].split("|") if c] == expected


@pytest.mark.heavy
@pytest.mark.parametrize("scheme", ["fixed", "label_fractions"])
def test_calibration_never_uses_a_scored_case_under_other_schemes(scheme, tmp_path):
    """Fixed splits calibrate on the given val set; label-efficiency arms on their labelled selection patients."""
    data = write_radiograph_set(tmp_path / "data", n_patients=16 if scheme == "fixed" else 24, images_per_patient=2,
                                size=32, seed=9)
    manifest = data / "manifest.csv"
    if scheme == "fixed":  # patients 0-9 train, 10-12 val (model selection), 13-15 test
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        patients = sorted({r["patient_id"] for r in rows})
        role = {p: "train" if i < 10 else "val" if i < 13 else "test" for i, p in enumerate(patients)}
        with open(manifest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*rows[0], "split"])
            writer.writeheader()
            writer.writerows({**r, "split": role[r["patient_id"]]} for r in rows)
    raw = {"task": "classification", "data": {"manifest": str(manifest), "dims": 2, "image_size": 32},
           "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 8},
           "cv": {"folds": 2, "bootstrap": 100, **({"label_fractions": [0.5]} if scheme != "fixed" else {})},
           "calibrate": {"method": "temperature"}, "conformal": {"alpha": 0.2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["cv", str(tmp_path / "c.yaml"), "--out", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert all("coverage" in arm["calibration"] for arm in metrics["arms"].values())
    for done in run.glob("arms/*/repeat*_fold*/done.json"):
        images = json.loads((done.parent / "fold_images.json").read_text())
        record = json.loads(done.read_text())["record"]
        assert record["calibration"]["n_cases"] == len(images["selection"]["image_hashes"]) > 0
        assert not set(images["selection"]["patient_keys"]) & set(images["scored"]["patient_keys"])
        assert not set(images["selection"]["patient_keys"]) & set(images["train"]["patient_keys"])
