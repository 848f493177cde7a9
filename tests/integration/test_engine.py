"""``cross_validate`` called from Python: the same numbers as ``medtl cv``; nested folders resume after a kill."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from medtl.arms import resolve_arms
from medtl.cli import main
from medtl.config import load_config
from medtl.data.dataset import prepare_cases
from medtl.data.manifest import read_config_manifest
from medtl.data.splits import make_folds
from medtl.errors import RunMismatchError
from medtl.rundir import RunDir
from medtl.samples.sample_sets import write_radiograph_set
from medtl.tasks import task_of
from medtl.workflows import cross_validate
from medtl.workflows.cv_metrics import arm_metrics


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    data = write_radiograph_set(root / "data", n_patients=9, images_per_patient=2, size=32, seed=4)
    config = {"task": "classification", "data": {"manifest": str(data / "manifest.csv"), "dims": 2,
                                                 "image_size": [32, 32]},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 2, "batch_size": 6, "lr": 0.003}, "cv": {"folds": 3, "bootstrap": 200},
              "compare": ["linear"]}
    path = root / "cv.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _prepared(config_path, cache):
    config = load_config(config_path)
    manifest = read_config_manifest(config)
    cases, _ = prepare_cases(manifest, config, cache, progress=False)
    task = task_of(config)
    folds = make_folds([c.group_key for c in cases], [task.stratum(c) for c in cases], config.cv.folds,
                       config.train.seed, need_all_classes=task.needs_all_classes_per_fold)
    return config, resolve_arms(config), cases, folds, manifest.class_names


def test_cross_validate_gives_the_numbers_of_medtl_cv(setup, tmp_path):
    assert main(["cv", str(setup), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    expected = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    config, arms, cases, folds, class_names = _prepared(setup, tmp_path / "cache")
    results = cross_validate(arms, cases, folds, RunDir(tmp_path / "direct"), class_names=class_names)
    assert list(results) == [a.name for a in arms] and all(len(r.folds) == 3 for r in results.values())
    metrics, verdicts = arm_metrics(config, class_names, results)
    for key in ("summary", "folds", "arms", "main_arm", "primary_metric"):
        assert metrics[key] == expected[key], key
    # medtl cv adds each comparison's role in the run's multiplicity (primary / secondary with p_holm)
    numbers = [{k: v for k, v in c.items() if k not in ("role", "p_holm")} for c in expected["comparisons"]]
    assert metrics["comparisons"] == numbers
    assert len(verdicts) == 1
    # the CLI's splits are the engine's splits: same rows, same order
    assert (tmp_path / "direct" / "splits.csv").read_text() == (tmp_path / "cli" / "splits.csv").read_text()


def test_a_folder_is_refused_for_other_folds_or_another_arm_config(setup, tmp_path):
    config, arms, cases, folds, class_names = _prepared(setup, tmp_path / "cache")
    store = RunDir(tmp_path / "outer").child("tune/outer0/trial-0")
    one_arm = arms[:1]
    short = [a.__class__(a.name, a.config.derive({"train.epochs": 1}), a.required) for a in one_arm]
    cross_validate(short, cases, folds[:1], store, class_names=class_names)
    with pytest.raises(RunMismatchError, match="folds"):
        cross_validate(short, cases, folds[1:2], store, class_names=class_names)
    with pytest.raises(RunMismatchError, match="train.epochs"):
        cross_validate(one_arm, cases, folds[:1], store, class_names=class_names)
    with pytest.raises(Exception, match="outside"):
        RunDir(tmp_path / "outer").child("../escape")


NESTED = """
import sys
from tests.integration.test_engine import _prepared
from medtl.rundir import RunDir
from medtl.workflows import cross_validate
config, arms, cases, folds, names = _prepared(sys.argv[1], sys.argv[2])
cross_validate(arms, cases, folds, RunDir(sys.argv[3]).child("tune/outer0/trial-3"), class_names=names)
"""


@pytest.mark.heavy
def test_a_nested_call_killed_mid_fold_resumes_to_the_same_results(setup, tmp_path):
    config, arms, cases, folds, class_names = _prepared(setup, tmp_path / "cache")
    reference = cross_validate(arms, cases, folds, RunDir(tmp_path / "ref"), class_names=class_names)
    outer = tmp_path / "outer"
    child = RunDir(outer).child("tune/outer0/trial-3")
    process = subprocess.Popen([sys.executable, "-c", NESTED, str(setup), str(tmp_path / "cache"), str(outer)],
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "child.log", "w"), cwd=str(_repo_root()))
    deadline = time.time() + 120
    while time.time() < deadline and not list(child.root.glob("arms/*/*/state.pt")) and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(child.root.glob("arms/*/*/state.pt")), "the nested call must have been interrupted mid-fold"
    assert not all(child.fold(a.name, f.repeat, f.fold).done.exists() for a in arms for f in folds)
    resumed = cross_validate(arms, cases, folds, child, class_names=class_names)
    for name, result in reference.items():
        assert [f.rows for f in resumed[name].folds] == [f.rows for f in result.folds]
        assert [f.record for f in resumed[name].folds] == [f.record for f in result.folds]


def _repo_root():
    return Path(__file__).parents[2]
