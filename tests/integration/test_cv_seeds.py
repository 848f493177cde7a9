"""Issue 27.11: ``cv.seeds`` trains every arm with N seeds on the same folds; a case's prediction is the seed mean,
the CIs resample patients, and the seed spread is reported beside them."""

import csv
import json

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from medtl.cli import main
from tests.copies import write_manifest, write_originals


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    rows = write_originals(root, n=16, size=32)
    write_manifest(root / "manifest.csv", rows)
    config = {"task": "classification", "data": {"manifest": str(root / "manifest.csv"), "dims": 2,
                                                 "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 2, "batch_size": 4},
              "cv": {"folds": 2, "bootstrap": 100, "seeds": 3},
              "compare": [{"name": "slow", "set": {"train.lr": 0.0001}}]}
    (root / "cv.yaml").write_text(yaml.safe_dump(config))
    assert main(["cv", str(root / "cv.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def _predictions(run):
    with open(run / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_arm_is_trained_with_every_seed_on_the_same_folds(seeded_run):
    rows = _predictions(seeded_run)
    main_arm = json.loads((seeded_run / "metrics.json").read_text())["main_arm"]
    for arm in (main_arm, "slow"):
        mine = [r for r in rows if r["arm"] == arm]
        assert sorted({r["seed"] for r in mine}) == ["0", "1", "2"] and len(mine) == 3 * 16
        folds = {s: {r["case_id"]: r["fold"] for r in mine if r["seed"] == s} for s in ("0", "1", "2")}
        assert folds["0"] == folds["1"] == folds["2"]  # the same folds
        probs = {s: [float(r["prob_1"]) for r in sorted(mine, key=lambda r: r["case_id"]) if r["seed"] == s]
                 for s in ("0", "1", "2")}
        assert probs["0"] != probs["1"]  # another seed: another model
        split = [json.loads((seeded_run / "arms" / name / "repeat0_fold0" / "fold_images.json").read_text())
                 for name in (arm, f"{arm}.seed1", f"{arm}.seed2")]
        assert split[0] == split[1] == split[2]  # same inner split and labelled patients


def test_the_pooled_metric_is_that_of_the_seed_averaged_predictions(seeded_run):
    rows = _predictions(seeded_run)
    metrics = json.loads((seeded_run / "metrics.json").read_text())
    main_arm = metrics["main_arm"]
    mine = [r for r in rows if r["arm"] == main_arm]
    cases = sorted({r["case_id"] for r in mine})
    mean = [np.mean([float(r["prob_1"]) for r in mine if r["case_id"] == c]) for c in cases]
    label = [next(r["label"] for r in mine if r["case_id"] == c) for c in cases]
    positive = metrics["class_names"][1]
    expected = roc_auc_score([lab == positive for lab in label], mean)
    assert metrics["summary"]["auc"]["pooled"] == pytest.approx(expected, abs=1e-6)


def test_the_seed_spread_is_reported_beside_the_patient_cis(seeded_run):
    metrics = json.loads((seeded_run / "metrics.json").read_text())
    seeds = metrics["seeds"]
    assert seeds["n"] == 3 and set(seeds["arms"]) == {metrics["main_arm"], "slow"}
    spread = seeds["arms"]["slow"]
    assert len(spread["values"]) == 3 and spread["min"] <= spread["mean"] <= spread["max"]
    comparison = metrics["comparisons"][0]
    per_seed = seeds["comparisons"][0]
    assert len(per_seed["per_seed"]) == 3
    assert comparison["seed_sd"] == pytest.approx(np.std(per_seed["per_seed"], ddof=1))
    assert comparison["within_seed_noise"] == (abs(comparison["mean_diff"]) <= 2 * comparison["seed_sd"])
    report = (seeded_run / "report.html").read_text()
    assert "Training seeds (3)" in report


def test_predict_and_evaluate_use_every_seed_of_the_arm(seeded_run, tmp_path):
    from medtl.models.trained import load_trained_run

    trained = load_trained_run(seeded_run)
    assert len(trained.members) == 3 * 2 and len({m.name for m in trained.members}) == 6
    manifest = json.loads((seeded_run / "config.json").read_text())["data"]["manifest"] if (
        seeded_run / "config.json").exists() else yaml.safe_load((seeded_run / "config.yaml").read_text())["data"][
        "manifest"]
    assert main(["evaluate", str(seeded_run), manifest, "--fold", "0", "--out", str(tmp_path / "ext"),
                 "--quiet"]) == 0
    with open(tmp_path / "ext" / "predictions.csv", newline="") as f:
        external = {r["case_id"]: float(r["prob_1"]) for r in csv.DictReader(f)}
    rows = [r for r in _predictions(seeded_run) if r["arm"] == trained.arm and r["fold"] == "0"]
    for case in {r["case_id"] for r in rows}:
        seed_mean = np.mean([float(r["prob_1"]) for r in rows if r["case_id"] == case])
        assert external[case] == pytest.approx(seed_mean, abs=1e-5)  # fold 0 of every seed, averaged
