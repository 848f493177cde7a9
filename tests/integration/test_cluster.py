"""run.executor dask (and ray): the same results as a sequential run, a lost worker costs only its unit, a re-run
trains only the missing units, and sharded predict on the engine equals the single-process output."""

import csv
import os
import signal
import threading
import time

import pytest

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set

pytest.importorskip("distributed")

pytestmark = [pytest.mark.usefixtures("all_cores"), pytest.mark.heavy]  # DDP ranks / cluster workers: several processes

CONFIG = """task: classification
compare:
  - {name: lr2, set: {train.lr: 0.002}}
"""


def cv_args(manifest, out, *extra, epochs=2):
    config = out.parent / f"{out.name}.yaml"
    config.write_text(CONFIG)
    overrides = [f"data.manifest={manifest}", "model.backbone=tiny-resnet", "model.pretrained=none",
                 f"train.epochs={epochs}", "train.batch_size=4", "cv.folds=2", "cv.bootstrap=100",
                 "data.image_size=[32,32]", "train.threads=1"]  # same threads: bit-identical results
    return ["cv", str(config), "--out", str(out), "--quiet", *[x for o in overrides for x in ("--set", o)], *extra]


def rows(path):
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: (r.get("arm", ""), r["case_id"]))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=8, images_per_patient=2, size=40,
                                seed=3) / "manifest.csv"


@pytest.fixture(scope="module")
def sequential(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "run"
    assert main(cv_args(data, out)) == 0
    return out


def test_cv_on_a_two_worker_dask_cluster_equals_the_sequential_run(data, sequential, tmp_path):
    out = tmp_path / "dask"
    assert main(cv_args(data, out, "--executor", "dask", "--cluster-workers", "2")) == 0
    assert (out / "metrics.json").read_text() == (sequential / "metrics.json").read_text()
    assert rows(out / "predictions.csv") == rows(sequential / "predictions.csv")
    assert "sending 4 unit(s) to the dask executor" in (out / "log.txt").read_text()


def test_a_rerun_trains_only_the_missing_units(data, sequential, tmp_path):
    import shutil

    out = tmp_path / "lost"
    shutil.copytree(sequential, out)
    lost = out / "arms" / "lr2" / "repeat0_fold1"
    (lost / "done.json").unlink()  # as if its worker died before the unit finished
    (out / "metrics.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("arms/*/*/done.json")}
    assert main(cv_args(data, out, "--executor", "dask")) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished units were not touched
    assert (lost / "done.json").exists()
    assert "sending 1 unit(s)" in (out / "log.txt").read_text()
    assert (out / "metrics.json").read_text() == (sequential / "metrics.json").read_text()


def test_a_worker_killed_mid_fold_costs_only_its_unit(data, tmp_path):
    from distributed import LocalCluster

    reference = tmp_path / "reference"
    # one arm (2 units): the kill and the resume are per unit; 5 epochs: long enough to be killed after the first
    assert main(cv_args(data, reference, "--set", "compare=[]", epochs=5)) == 0
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    out, result = tmp_path / "killed", {}
    try:
        thread = threading.Thread(target=lambda: result.update(code=main(cv_args(
            data, out, "--executor", "dask", "--scheduler", cluster.scheduler_address, "--set", "compare=[]", epochs=5))))
        thread.start()
        deadline = time.time() + 120
        while not list(out.glob("arms/*/*/state.pt")) and time.time() < deadline:
            time.sleep(0.02)
        assert list(out.glob("arms/*/*/state.pt")), "no unit started training"
        pids = [nanny.process.process.pid for nanny in cluster.workers.values()]
        for pid in pids:  # every worker dies mid-fold; the nannies start new ones and Dask reruns the units
            os.kill(pid, signal.SIGKILL)
        thread.join(timeout=300)
    finally:
        cluster.close()
    assert result.get("code") == 0
    # the interrupted units resumed from their epoch checkpoints: the numbers are the uninterrupted run's
    assert (out / "metrics.json").read_text() == (reference / "metrics.json").read_text()


def test_sharded_predict_on_the_engine_equals_the_single_process_output(data, sequential, tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main(["predict", str(sequential), str(data), "--out", str(single), "--quiet"]) == 0
    assert main(["predict", str(sequential), str(data), "--out", str(sharded), "--quiet", "--executor", "dask",
                 "--shards", "3"]) == 0
    assert rows(sharded / "predictions.csv") == rows(single / "predictions.csv")
    assert sorted(p.name for p in (sharded / "shards").iterdir()) == ["1of3", "2of3", "3of3"]


def test_adaptation_arms_are_refused_on_an_engine_before_anything_is_written(data, tmp_path, capsys):
    out = tmp_path / "dann"
    assert main(cv_args(data, out, "--executor", "dask", "--set", "adapt.method=dann",
                        "--set", f"adapt.target_manifest={data}")) != 0
    assert "run.executor: local" in capsys.readouterr().err
    assert not out.exists()


def test_cv_on_a_local_ray_equals_the_sequential_run(data, sequential, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    assert main(cv_args(data, out, "--executor", "ray", "--cluster-workers", "2")) == 0
    assert (out / "metrics.json").read_text() == (sequential / "metrics.json").read_text()


def test_a_search_with_trials_side_by_side_on_dask_equals_the_same_search_run_here(data, tmp_path):
    pytest.importorskip("optuna")
    config = tmp_path / "tune.yaml"
    config.write_text("task: classification\ntune:\n  space:\n    train.lr: {log_uniform: [0.0003, 0.03]}\n"
                      "    finetune.strategy: {choice: [linear, full]}\n  trials: 2\n  inner_folds: 2\n"
                      "  parallel: 2\n  startup_trials: 2\n")
    overrides = [f"data.manifest={data}", "model.backbone=tiny-resnet", "model.pretrained=none", "train.epochs=1",
                 "train.batch_size=4", "cv.folds=2", "cv.bootstrap=100", "data.image_size=[32,32]", "train.threads=1"]
    sets = [x for o in overrides for x in ("--set", o)]
    assert main(["tune", str(config), "--out", str(tmp_path / "here"), "--quiet", *sets]) == 0
    assert main(["tune", str(config), "--out", str(tmp_path / "dask"), "--quiet", *sets, "--executor", "dask",
                 "--cluster-workers", "2"]) == 0

    def trials(out):
        with open(out / "tune" / "trials.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    assert trials(tmp_path / "dask") == trials(tmp_path / "here") and len(trials(tmp_path / "here")) == 4
    assert rows(tmp_path / "dask" / "predictions.csv") == rows(tmp_path / "here" / "predictions.csv")
