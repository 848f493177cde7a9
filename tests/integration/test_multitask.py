"""task: multitask end to end: per-task rows only for the targets a case has, single-task controls on the same
folds, per-task metrics, resume, predict/evaluate outputs per task, explanations of a classification head."""

import csv
import json

import numpy as np
import pytest

from medtl.cli import main
from medtl.io import load_volume
from medtl.predict.writers import OutputGeometry
from medtl.samples.sample_data import write_ct_set
from medtl.samples.sample_sets import write_multitask_manifest, write_radiograph_set

TASKS = "[{name: nodule, kind: classification, column: label}, {name: lesion, kind: segmentation, column: mask}]"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cv_args(manifest, out, *extra):
    overrides = [f"data.manifest={manifest}", "task=multitask", f"tasks={TASKS}", "model.backbone=tiny-resnet",
                 "model.pretrained=none", "train.epochs=2", "train.batch_size=4", "cv.folds=2", "cv.bootstrap=100",
                 "data.image_size=[32,32]", "multitask.weighting=uncertainty", *extra]
    config = out.parent / "config.yaml"
    config.write_text("task: multitask\n")
    return ["cv", str(config), "--out", str(out), "--quiet", *[x for o in overrides for x in ("--set", o)]]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=10, images_per_patient=2, size=40, seed=4)
    return write_multitask_manifest(root)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(cv_args(data, out)) == 0
    return out


def targets(manifest):
    rows = read_csv(manifest)
    return {"nodule": {r["image"] for r in rows if r["label"]}, "lesion": {r["image"] for r in rows if r["mask"]}}


def test_each_task_is_scored_on_exactly_the_cases_with_its_target(run, data):
    manifest = read_csv(data)
    assert any(not r["label"] for r in manifest) and any(not r["mask"] for r in manifest)
    rows = read_csv(run / "predictions.csv")
    splits = {r["case_id"]: r for r in read_csv(run / "splits.csv")}
    wanted = {"nodule": sum(bool(r["label"]) for r in manifest), "lesion": sum(bool(r["mask"]) for r in manifest)}
    for arm, tasks in {"multitask": ["nodule", "lesion"], "nodule-only": ["nodule"], "lesion-only": ["lesion"]}.items():
        mine = [r for r in rows if r["arm"] == arm]
        assert {r["task"] for r in mine} == set(tasks)
        for task in tasks:
            cases = [r["case_id"] for r in mine if r["task"] == task]
            assert len(cases) == len(set(cases)) == wanted[task], (arm, task)
    # the controls are scored on the same cases in the same folds as the multitask arm
    for task in ("nodule", "lesion"):
        multi = {(r["case_id"], r["fold"]) for r in rows if r["arm"] == "multitask" and r["task"] == task}
        control = {(r["case_id"], r["fold"]) for r in rows if r["arm"] == f"{task}-only" and r["task"] == task}
        assert multi == control
        assert all(splits[case]["fold"] == fold for case, fold in multi)


def test_metrics_have_the_single_task_shape_per_task(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "multitask" and metrics["primary_task"] == "nodule"
    tasks = metrics["tasks"]
    assert tasks["nodule"]["primary_metric"] == "auc" and tasks["lesion"]["primary_metric"] == "dice"
    assert set(tasks["nodule"]["arms"]) == {"multitask", "nodule-only"}
    assert set(tasks["lesion"]["arms"]) == {"multitask", "lesion-only"}
    for name, result in tasks.items():
        assert {"summary", "folds", "arms", "comparisons"} <= set(result)
        [comparison] = result["comparisons"]
        assert (comparison["a"], comparison["b"]) == ("multitask", f"{name}-only")
        assert comparison["metric"] == result["primary_metric"]
        assert len(comparison["ci95"]) == 2 and 0 <= comparison["p_value"] <= 1
        summary = result["summary"][result["primary_metric"]]
        assert summary["ci95"][0] <= summary["pooled"] <= summary["ci95"][1] or np.isnan(summary["pooled"])
    assert metrics["summary"] == tasks["nodule"]["summary"]  # the top level is the first task's
    done = json.loads(next((run / "arms" / "multitask").rglob("done.json")).read_text())
    assert {"weight_nodule", "weight_lesion", "loss_nodule", "loss_lesion"} <= set(done["history"][0])
    explained = metrics["explanations"]["arms"]  # Grad-CAM of the classification head; none for lesion-only
    assert set(explained) == {"multitask", "nodule-only"}
    assert explained["multitask"]["task"] == "nodule"
    assert explained["multitask"]["n_cases"] == sum(1 for r in read_csv(run / "predictions.csv")
                                                    if r["arm"] == "multitask" and r["task"] == "nodule"
                                                    and r["fold"] == "0")
    report = (run / "report.html").read_text()
    assert "Multi-task loss weights" in report and "nodule: Per-fold results" in report
    assert "lesion: Per-fold results" in report


def test_a_resumed_run_reports_the_same_numbers(run, data):
    before = (run / "metrics.json").read_text()
    assert main(cv_args(data, run)) == 0
    assert (run / "metrics.json").read_text() == before


def test_predict_and_evaluate_give_every_task_output(run, data, tmp_path):
    out = tmp_path / "p"
    assert main(["predict", str(run), str(data), "--out", str(out), "--quiet", "--explain", "gradcam"]) == 0
    rows = read_csv(out / "predictions.csv")
    manifest = read_csv(data)
    assert len(rows) == len(manifest)
    assert {"nodule.prob_0", "nodule.prob_1", "nodule.predicted", "lesion.mask_file", "nodule.explain_file"} <= \
        set(rows[0])
    for row, case in zip(rows, manifest):
        assert abs(float(row["nodule.prob_0"]) + float(row["nodule.prob_1"]) - 1) < 1e-4
        mask = OutputGeometry.of(load_volume(out / row["lesion.mask_file"]))
        source = OutputGeometry.of(load_volume(data.parent / case["image"]))
        assert mask.shape == source.shape
        np.testing.assert_allclose(mask.origin, source.origin, atol=1e-4)
        assert (out / row["nodule.explain_file"]).exists()
    evaluated = tmp_path / "e"
    assert main(["evaluate", str(run), str(data), "--out", str(evaluated), "--quiet"]) == 0
    metrics = json.loads((evaluated / "metrics.json").read_text())
    wanted = targets(data)
    assert metrics["tasks"]["nodule"]["n_cases"] == len(wanted["nodule"])
    assert metrics["tasks"]["lesion"]["n_cases"] == len(wanted["lesion"])
    assert metrics["tasks"]["lesion"]["primary_metric"] == "dice" and metrics["primary_metric"] == "auc"


def test_refusals_name_the_fix(run, data, tmp_path, capsys):
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "x"), "--quiet", "--explain", "gradcam",
                 "--explain-task", "lesion"]) != 0
    assert "not a classification task" in capsys.readouterr().err
    assert main(["export", str(run), "--out", str(tmp_path / "onnx"), "--quiet"]) != 0
    assert "multitask" in capsys.readouterr().err
    assert not (tmp_path / "onnx").exists()
    bad = tmp_path / "bad.csv"
    lines = data.read_text().splitlines()
    image = lines[1].split(",")[0]
    bad.write_text("\n".join(lines + [f"{image.replace('_0', '_9')},,,SYNTH-X"]) + "\n")
    assert main(cv_args(bad, tmp_path / "r")) != 0
    err = capsys.readouterr().err
    assert f"line {len(lines) + 1}" in err and "no target for any task" in err
    assert not (tmp_path / "r").exists()


def test_3d_multitask_runs_end_to_end(tmp_path):
    ct = write_ct_set(tmp_path / "ct", 6, (12, 32, 32), seed=2)
    out = tmp_path / "run3d"
    assert main(cv_args(ct / "manifest.csv", out, "data.dims=3", "data.image_size=[12,32,32]",
                        "multitask.controls=false", "multitask.weighting=equal")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"nodule", "lesion"} and list(metrics["tasks"]["lesion"]["arms"]) == ["multitask"]


def test_sharded_predict_merges_to_the_single_run_with_every_task_file(run, data, tmp_path):
    whole = tmp_path / "whole"
    assert main(["predict", str(run), str(data), "--out", str(whole), "--quiet", "--explain", "gradcam"]) == 0
    shards = [tmp_path / f"s{i}" for i in (1, 2)]
    for i, shard in enumerate(shards, start=1):
        assert main(["predict", str(run), str(data), "--out", str(shard), "--quiet", "--explain", "gradcam",
                     "--shard", f"{i}/2"]) == 0
    merged = tmp_path / "merged"
    assert main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    key = "case_id"
    expected = {r[key]: r for r in read_csv(whole / "predictions.csv")}
    got = {r[key]: r for r in read_csv(merged / "predictions.csv")}
    assert got == expected
    plain = tmp_path / "plain"  # explaining a head must not change any prediction (batch statistics, modes)
    assert main(["predict", str(run), str(data), "--out", str(plain), "--quiet"]) == 0
    for row in read_csv(plain / "predictions.csv"):
        assert row["nodule.prob_1"] == expected[row[key]]["nodule.prob_1"]
        assert row["lesion.foreground_voxels"] == expected[row[key]]["lesion.foreground_voxels"]
    for row in got.values():  # every task's files came along
        assert (merged / row["lesion.mask_file"]).exists() and (merged / row["nodule.explain_file"]).exists()


def test_a_resume_whose_classification_labels_changed_is_refused(tmp_path, capsys):
    """Every target a task reads is in the run's data fingerprint: flipped labels of a finished multitask run are
    refused on re-run, as they are for a single-task run (they were not: only ``case.label`` was fingerprinted)."""
    root = write_radiograph_set(tmp_path / "xr", n_patients=6, images_per_patient=1, size=32, seed=8)
    manifest = write_multitask_manifest(root)
    args = cv_args(manifest, tmp_path / "run", "train.epochs=1", "multitask.controls=false")
    assert main(args) == 0
    rows = read_csv(manifest)
    flipped = [{**r, "label": {"0": "1", "1": "0"}.get(r["label"], r["label"])} for r in rows]
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(flipped)
    assert main(args) == 2
    assert "the data differ from the run's" in capsys.readouterr().err
