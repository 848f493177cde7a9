"""``medtl tune``: nested cross-validation that cannot flatter a model on noise, audited, deterministic and
resumable after a kill."""

import csv
import json
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from medtl.arms import Arm, resolve_arms
from medtl.cli import main
from medtl.config import load_config
from medtl.data.dataset import prepare_cases
from medtl.data.manifest import read_config_manifest
from medtl.errors import InputError
from medtl.models.trained import load_trained_run
from medtl.rundir import RunDir
from medtl.workflows import cross_validate
from medtl.workflows.run_state import folds_from_splits
from medtl.workflows.tune_audit import AuditError, audit_search

pytestmark = pytest.mark.heavy  # the heavy tier: `make test-heavy` (see the Makefile)

pytest.importorskip("optuna")

SPACE = {"train.lr": {"log_uniform": [1e-4, 3e-2]}, "finetune.strategy": {"choice": ["linear", "full"]},
         "train.epochs": {"int": [1, 2]}}


def _dataset(root, n_patients: int, random_labels: bool):
    from medtl.samples.sample_sets import write_radiograph_set

    data = write_radiograph_set(root / "data", n_patients=n_patients, images_per_patient=1, size=16, seed=4)
    if random_labels:  # no signal: every label drawn apart from the image
        rows = list(csv.DictReader(open(data / "manifest.csv")))
        labels = [i % 2 for i in range(len(rows))]
        random.Random(11).shuffle(labels)
        for row, label in zip(rows, labels):
            row["label"] = str(label)
        with open(data / "manifest.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return data / "manifest.csv"


def _config(root, manifest, outer_folds=3, **tune):
    config = {"task": "classification", "data": {"manifest": str(manifest), "dims": 2, "image_size": [16, 16]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 1, "batch_size": 8, "lr": 0.003}, "cv": {"folds": outer_folds, "bootstrap": 200},
              "tune": {"space": SPACE, "inner_folds": 2, **tune}}
    path = root / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    path = _config(root, _dataset(root, 36, random_labels=True), trials=20, startup_trials=8)
    assert main(["tune", str(path), "--out", str(root / "run"), "--quiet"]) == 0
    return path, root / "run"


def test_on_noise_the_nested_estimate_stays_at_chance_where_selecting_on_the_outer_folds_does_not(noise):
    path, out = noise
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["main_arm"] == "tuned"
    nested = metrics["arms"]["tuned"]["summary"]["auc"]["pooled"]
    assert abs(nested - 0.5) <= 0.1, nested
    # anti-control (test only): the same trials, each scored on the outer folds, and in each outer fold the trial
    # that scored best on that fold kept: a search that selects on the folds it reports
    config = load_config(path)
    manifest = read_config_manifest(config)
    cases, _ = prepare_cases(manifest, config, out / "cache", progress=False)
    folds = folds_from_splits(RunDir(out), cases)
    trials = [r for r in csv.DictReader(open(out / "tune" / "trials.csv")) if r["outer"] == "outer0"]
    assert len(trials) == 20
    per_fold = np.zeros((len(trials), len(folds)))
    for index, row in enumerate(trials):
        params = {"train.lr": float(row["train.lr"]), "finetune.strategy": row["finetune.strategy"],
                  "train.epochs": int(row["train.epochs"])}
        arm = Arm("leaky", config.derive(params, check_paths=False), True)
        result = cross_validate([arm], cases, folds, RunDir(out.parent / f"leaky{row['trial']}"),
                                class_names=manifest.class_names)["leaky"]
        per_fold[index] = [r["auc"] for r in result.records]
    leaky = float(np.mean(per_fold.max(axis=0)))
    assert leaky >= 0.62 and leaky - nested >= 0.1, (leaky, nested)
    # medtl's own statement of the naive number shows the same inflation
    assert metrics["tune"]["optimism"]["naive_inner_best"] - nested >= 0.05


def test_every_trial_stays_inside_its_outer_fold_and_the_audit_catches_a_leak(noise):
    _, out = noise
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tune"]["audit"]["passed"] and metrics["tune"]["audit"]["trial_folds_checked"] == 3 * 20 * 2
    splits = list(csv.DictReader(open(out / "splits.csv")))
    for fold in range(3):
        scored = {r["patient_key"] for r in splits if int(r["fold"]) == fold}
        seen = set()
        for images in (out / "tune" / f"outer{fold}").glob("trial*/arms/*/*/fold_images.json"):
            roles = json.loads(images.read_text())
            seen |= {k for role in ("train", "selection", "scored") for k in roles[role]["patient_keys"]}
        assert seen and not seen & scored
        assert seen | scored == {r["patient_key"] for r in splits}
    # the audit reads the run folder: a trial fold that saw an outer-fold patient fails it
    from medtl.workflows.tune_search import OuterSearch
    from medtl.workflows.tune_trial import context_from_folder

    ctx = context_from_folder(str(out))
    folds = folds_from_splits(ctx.rundir, ctx.cases)
    searches = [OuterSearch(f, f"outer{f.fold}", None, 0, {}, 0.0, 0.0) for f in folds]
    assert audit_search(ctx, searches)["passed"]
    images = next((out / "tune" / "outer1").glob("trial0003/arms/*/repeat0_fold0/fold_images.json"))
    original = images.read_text()
    roles = json.loads(original)
    roles["train"]["patient_keys"].append(sorted({r["patient_key"] for r in splits if r["fold"] == "1"})[0])
    images.write_text(json.dumps(roles))
    try:
        with pytest.raises(AuditError, match="trial0003"):
            audit_search(ctx, searches)
    finally:
        images.write_text(original)


def test_the_run_compares_tuned_with_the_untuned_arm_and_writes_a_runnable_final_config(noise):
    _, out = noise
    metrics = json.loads((out / "metrics.json").read_text())
    primary = metrics["comparisons"][0]
    assert (primary["a"], primary["b"], primary["role"]) == ("tuned", "scratch", "primary")
    assert primary["test"].startswith("paired patient bootstrap")
    block = metrics["tune"]
    assert [o["outer"] for o in block["outer"]] == ["outer0", "outer1", "outer2"]
    assert set(block["importance"]) == set(SPACE)
    final = load_config(out / "tune" / "final_config.yaml")
    assert final.tune is None and final.train.lr == pytest.approx(block["final"]["params"]["train.lr"])
    report = (out / "report.html").read_text()
    assert "Hyper-parameter search (nested cross-validation)" in report and "What the naive way" in report
    with pytest.raises(InputError, match="final_config.yaml"):
        load_trained_run(out, "tuned")
    # Grad-CAM explains the untuned arms; the tuned arm (one model per outer fold) is skipped with a note
    assert "not computed" in metrics["explanations"]["arms"]["tuned"]["note"]
    assert resolve_arms(load_config(out / "config.yaml", check_paths=False))[0].name == "scratch"


def _trial_table(out):
    rows = list(csv.DictReader(open(out / "tune" / "trials.csv")))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_a_search_killed_during_a_trial_resumes_to_the_same_trials_and_choice(tmp_path):
    manifest = _dataset(tmp_path, 24, random_labels=False)
    path = _config(tmp_path, manifest, outer_folds=2, trials=4, startup_trials=2, pruning=True)
    assert main(["cv", str(path), "--out", str(tmp_path / "straight"), "--quiet"]) == 0  # medtl cv tunes too
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "medtl", "tune", str(path), "--out", str(killed), "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "log.txt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and "outer1 trial 1:" in log.read_text():
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert "tune finished" not in log.read_text()
    assert main(["tune", str(path), "--out", str(killed), "--quiet"]) == 0
    assert _trial_table(killed) == _trial_table(tmp_path / "straight")
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((killed / "metrics.json").read_text())
    assert [o["params"] for o in resumed["tune"]["outer"]] == [o["params"] for o in straight["tune"]["outer"]]
    assert resumed["arms"]["tuned"]["summary"] == straight["arms"]["tuned"]["summary"]


def _fixed_split_config(root):
    """A manifest with a split column (train / val / test by patient): one outer fold, the test set."""
    manifest = _dataset(root, 24, random_labels=False)
    rows = list(csv.DictReader(open(manifest)))
    for index, row in enumerate(rows):
        row["split"] = ("test", "val", "train", "train")[index % 4]
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return _config(root, manifest, trials=2), "auc"


def _tiny_sample(root, name):
    from medtl.samples.sample_data import write_sample_data

    return write_sample_data(root / "sample", seed=0, size="tiny") / name / "manifest.csv"


def _leave_site_out_config(root):
    """Outer folds are the sites; the trials' inner folds split the training sites' patients."""
    config = {"task": "classification", "data": {"manifest": str(_tiny_sample(root, "sites2d")), "dims": 2,
                                                 "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 4},
              "cv": {"scheme": "leave_site_out", "bootstrap": 100},
              "tune": {"space": {"train.lr": {"log_uniform": [1e-3, 1e-2]}}, "trials": 2, "inner_folds": 2}}
    path = root / "sites.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, "auc"


def _segmentation_config(root):
    data = _tiny_sample(root, "cls2d_target")
    config = {"task": "segmentation", "data": {"manifest": str(data), "dims": 2, "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 4},
              "cv": {"folds": 2, "bootstrap": 100},
              "tune": {"space": {"train.lr": {"log_uniform": [1e-3, 1e-2]}}, "trials": 2, "inner_folds": 2}}
    path = root / "seg.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, "dice"


@pytest.mark.parametrize("make", [_fixed_split_config, _segmentation_config, _leave_site_out_config],
                         ids=["fixed-split", "segmentation", "leave-site-out"])
def test_the_search_runs_for_each_scheme_and_task_with_its_primary_metric(tmp_path, make):
    path, metric = make(tmp_path)
    out = tmp_path / "run"
    assert main(["tune", str(path), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["tune"]
    assert block["metric"] == metric and block["audit"]["passed"] and metrics["main_arm"] == "tuned"
    folds = folds_from_splits(RunDir(out), prepare_cases(read_config_manifest(load_config(path)),
                                                         load_config(path), out / "cache", progress=False)[0])
    assert [o["outer"] for o in block["outer"]] == [f"outer{f.fold}" for f in folds]
    predicted = [r for r in csv.DictReader(open(out / "predictions.csv")) if r["arm"] == "tuned"]
    for fold in folds:  # no trial of an outer fold saw a patient that fold's tuned model was scored on
        scored = {r["patient_key"] for r in predicted if int(r["fold"]) == fold.fold}
        seen = {k for images in (out / "tune" / f"outer{fold.fold}").glob("trial*/arms/*/*/fold_images.json")
                for role, members in json.loads(images.read_text()).items() for k in members.get("patient_keys", [])}
        assert scored and seen and not seen & scored


def test_a_compare_arm_listed_in_tune_arms_is_searched_the_same_way_and_compared_tuned_to_tuned(tmp_path):
    manifest = _dataset(tmp_path, 24, random_labels=False)
    config = yaml.safe_load(_config(tmp_path, manifest, outer_folds=2, trials=2).read_text())
    config["tune"] = {"space": {"train.lr": {"log_uniform": [1e-3, 3e-2]}}, "trials": 2, "inner_folds": 2,
                      "arms": ["linear"]}
    config["compare"] = ["linear"]
    path = tmp_path / "arms.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["tune", str(path), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["arms"]) == ["tuned", "linear-tuned", "scratch", "linear"]
    pairs = [(c["a"], c["b"], c["role"]) for c in metrics["comparisons"]]
    assert pairs[:3] == [("tuned", "scratch", "primary"), ("linear-tuned", "linear", "secondary"),
                         ("tuned", "linear-tuned", "secondary")]
    also = metrics["tune"]["also_tuned"]["linear-tuned"]
    assert also["arm"] == "linear" and also["audit"]["passed"] and also["fixed_arms"] == ["scratch", "linear"]
    trials = list(csv.DictReader(open(out / "tune" / "trials.csv")))
    assert {r["arm"] for r in trials} == {"scratch", "linear"} and len(trials) == 2 * 2 * 2
    # the compare arm's trials start from its own settings (its strategy), with the searched value on top
    trial_config = load_config(out / "tune" / "linear" / "outer0" / "trial0000" / "arms" / "linear" / "config.yaml",
                               check_paths=False)
    assert trial_config.finetune.strategy == "linear"
    assert load_config(out / "tune" / "linear" / "final_config.yaml").finetune.strategy == "linear"
