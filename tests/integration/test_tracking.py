"""track: [mlflow, tensorboard]: what the trackers hold equals metrics.json and done.json, a resume appends without
repeating a step, nothing patient-identifying is sent, and with tracking off neither library is imported."""

import json
import subprocess
import sys

import numpy as np
import pytest

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def cv_args(manifest, out, track="[mlflow, tensorboard]"):
    config = out.parent / "config.yaml"
    config.write_text("task: classification\n")
    overrides = [f"data.manifest={manifest}", "model.backbone=tiny-resnet", "model.pretrained=none",
                 "train.epochs=2", "train.batch_size=4", "cv.folds=2", "cv.bootstrap=100", "data.image_size=[32,32]",
                 "compare=[{name: lower_lr, set: {train.lr: 0.0005}}]", f"track={track}"]
    return ["cv", str(config), "--out", str(out), "--quiet", *[x for o in overrides for x in ("--set", o)]]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=8, images_per_patient=2, size=40, seed=6)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(cv_args(data / "manifest.csv", out)) == 0
    return out


def client(run):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")


def children(run):
    return json.loads((run / "tracking.json").read_text())["mlflow"]["ids"]["children"]


def done_files(run):
    return {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
            for p in sorted((run / "arms").glob("*/*/done.json"))}


def history(c, run_id, key):
    return [(m.step, m.value) for m in sorted(c.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_mlflow_holds_exactly_what_the_run_folder_holds(run):
    c, metrics, dones = client(run), json.loads((run / "metrics.json").read_text()), done_files(run)
    ids = json.loads((run / "tracking.json").read_text())["mlflow"]["ids"]
    assert set(children(run)) == set(dones) and len(dones) == 4  # 2 arms x 2 folds
    parent = c.get_run(ids["parent"])
    assert parent.data.params["train.epochs"] == "2" and parent.data.params["cv.folds"] == "2"
    for unit, done in dones.items():
        child = c.get_run(children(run)[unit])
        assert child.data.tags["mlflow.parentRunId"] == ids["parent"]
        for key in ("train_loss", "lr"):
            assert history(c, child.info.run_id, key) == [(h["epoch"], h[key]) for h in done["history"]]
        assert child.data.metrics["final/auc"] == done["record"]["auc"]
        assert child.data.metrics["final/n_val"] == done["record"]["n_val"]
    for arm, result in metrics["arms"].items():
        summary = result["summary"]["auc"]
        assert parent.data.metrics[f"summary/{arm}/auc/pooled"] == summary["pooled"]
        assert parent.data.metrics[f"summary/{arm}/auc/ci95_low"] == summary["ci95"][0]
    [comparison] = metrics["comparisons"]
    assert parent.data.metrics[f"compare/{comparison['a']}_vs_{comparison['b']}/auc/diff"] == comparison["mean_diff"]
    artifacts = {a.path for a in c.list_artifacts(ids["parent"])}
    assert {"metrics.json", "report.html"} <= artifacts
    assert parent.info.status == "FINISHED"


def test_tensorboard_event_files_hold_the_same_values(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = json.loads((run / "metrics.json").read_text())
    for unit, done in done_files(run).items():
        events = EventAccumulator(str(run / "tb" / unit))
        events.Reload()
        scalars = [(e.step, e.value) for e in events.Scalars("train_loss")]
        # TensorBoard stores 32-bit floats: equal to metrics.json's values rounded to float32
        assert scalars == [(h["epoch"], float(np.float32(h["train_loss"]))) for h in done["history"]]
    summary = EventAccumulator(str(run / "tb" / "summary"))
    summary.Reload()
    [event] = summary.Scalars(f"summary/{metrics['main_arm']}/auc/pooled")
    assert event.value == float(np.float32(metrics["summary"]["auc"]["pooled"]))


def test_nothing_patient_identifying_reaches_the_tracker(run, data):
    c = client(run)
    ids = json.loads((run / "tracking.json").read_text())["mlflow"]["ids"]
    texts = []
    for run_id in [ids["parent"], *children(run).values()]:
        tracked = c.get_run(run_id)
        texts += [*tracked.data.params.values(), *tracked.data.tags.values(), *tracked.data.params]
        texts += [a.path for a in c.list_artifacts(run_id)]
    blob = "\n".join(texts)
    assert "SYNTH" not in blob and str(data) not in blob and "manifest.csv" not in blob
    assert "file sha256" in c.get_run(ids["parent"]).data.params["data.manifest"]


def test_a_resumed_run_appends_to_the_same_runs_without_repeating_a_step(run, data):
    before = children(run)
    fold = next((run / "arms").glob("*/repeat0_fold1"))
    (fold / "done.json").unlink()  # this fold trains again on resume
    (run / "metrics.json").unlink()
    assert main(cv_args(data / "manifest.csv", run)) == 0
    assert children(run) == before
    c = client(run)
    for unit, done in done_files(run).items():
        steps = [step for step, _ in history(c, before[unit], "train_loss")]
        assert steps == [0, 1], unit
        assert len(c.get_metric_history(before[unit], "final/auc")) == 1
    ids = json.loads((run / "tracking.json").read_text())["mlflow"]["ids"]
    assert len(c.get_metric_history(ids["parent"], "summary/lower_lr/auc/pooled")) == 1


def test_tracking_switched_on_for_a_finished_run_logs_its_history(data, tmp_path):
    out = tmp_path / "later"
    assert main(cv_args(data / "manifest.csv", out, track="[]")) == 0
    assert not (out / "tracking.json").exists() and not (out / "mlflow.db").exists()
    assert main(cv_args(data / "manifest.csv", out, track="[mlflow]")) == 0  # tracking is not a config change
    c = client(out)
    for unit, done in done_files(out).items():
        assert history(c, children(out)[unit], "train_loss") == [(h["epoch"], h["train_loss"]) for h in
                                                                   done["history"]]


BLOCKER = """
import sys, traceback
attempts = []
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mlflow', 'tensorboard') or name == 'torch.utils.tensorboard':
            frames = [f for f in traceback.extract_stack()[:-1] if not f.filename.startswith('<frozen')]
            if '/medtl/' in frames[-1].filename:  # the module that asked for it is medtl's (not MONAI's)
                attempts.append(name)
            raise ImportError(name + ' blocked by the test')
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.mark.heavy
def test_with_tracking_off_medtl_never_imports_either_library(data, tmp_path):
    """Both libraries are made unimportable (MONAI itself tries them at import, optionally): a run with tracking
    off succeeds, and no import attempt came from medtl's code."""
    args = cv_args(data / "manifest.csv", tmp_path / "off", track="[]")
    code = BLOCKER + "from medtl.cli import main\nassert main(%r) == 0\nassert not attempts, attempts\n" % (args,)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "off" / "metrics.json").exists() and not (tmp_path / "off" / "tb").exists()


def test_a_missing_tracker_library_names_its_extra(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    assert main(cv_args(data / "manifest.csv", tmp_path / "x", track="[mlflow]")) != 0
    assert "medtl[mlflow]" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before the run folder is claimed


def test_a_store_elsewhere_keeps_its_artifacts_beside_it_not_in_the_working_folder(data, tmp_path, monkeypatch):
    """Issue 28.9: a sqlite store outside the run wrote MLflow's artifacts into ./mlruns of the working folder."""
    store = tmp_path / "stores"
    store.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = cv_args(data / "manifest.csv", tmp_path / "run", track="[mlflow]")
    assert main([*args, "--set", f"tracking.mlflow_uri=sqlite:///{store / 'team.db'}"]) == 0
    assert list(work.iterdir()) == []  # nothing in the working folder
    assert any((store / "mlflow-artifacts").rglob("metrics.json"))


@pytest.mark.parametrize("uri, words", [
    ("file:///tmp/mlruns", "use sqlite:///"),
    ("/tmp/some/folder", "use sqlite:///"),
    ("http://127.0.0.1:9", "no server answers"),
    ("sqlite:///{tmp}/notes.db", "is not an SQLite database"),
    ("sqlite:///{tmp}/missing/m.db", "does not exist"),
])
def test_a_tracking_store_that_cannot_work_is_one_line_before_the_run_starts(uri, words, data, tmp_path, capsys):
    """Issue 28.9: a file:// URI or an existing non-database file crashed with MLflow's traceback; an unreachable
    server cost 254 s of retries."""
    (tmp_path / "notes.db").write_text("my notes")
    args = cv_args(data / "manifest.csv", tmp_path / "run", track="[mlflow]")
    assert main([*args, "--set", f"tracking.mlflow_uri={uri.format(tmp=tmp_path)}"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and words in error and "Traceback" not in error, error
    assert not (tmp_path / "run").exists()
