"""Issue 27.12: with string labels the positive class of a binary task is stated everywhere, and
``data.positive_class`` decides it; sensitivity and specificity are about the class the outputs name."""

import csv
import json

import pytest
import yaml

from medtl.cli import main
from medtl.samples.sample_sets import write_radiograph_set


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """A radiograph set whose labels are words: 1 -> nodule, 0 -> normal (so 'normal' sorts second)."""
    root = write_radiograph_set(tmp_path_factory.mktemp("xr"), n_patients=10, images_per_patient=1, size=32, seed=9)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["label"] = {"1": "nodule", "0": "normal"}[row["label"]]
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def _run(manifest, out, capsys, **data):
    config = {"task": "classification", "data": {"manifest": str(manifest), "dims": 2, "image_size": [32, 32], **data},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 4},
              "cv": {"folds": 2, "bootstrap": 100}}
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["cv", str(path), "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text()), capsys.readouterr().out


def _sensitivity(predictions, positive):
    rows = [r for r in predictions if r["label"] == positive]
    names = [k[len("prob_"):] for k in predictions[0] if k.startswith("prob_")]
    hits = [max(names, key=lambda n: float(r[f"prob_{n}"])) == positive for r in rows]
    return sum(hits) / len(hits)


def test_string_labels_state_which_class_is_positive_and_the_setting_decides_it(named, tmp_path, capsys):
    metrics, printed = _run(named, tmp_path / "default", capsys)
    assert metrics["positive_class"]["name"] == "normal" and metrics["positive_class"]["set_by"] == "default"
    assert "positive class: normal" in printed and "data.positive_class" in printed
    assert any(w.startswith("positive class: normal") for w in metrics["warnings"])
    assert "positive class: normal" in (tmp_path / "default" / "report.html").read_text()

    metrics, printed = _run(named, tmp_path / "nodule", capsys, positive_class="nodule")
    assert metrics["positive_class"] == {"name": "nodule", "negative": "normal", "set_by": "data.positive_class"}
    assert "positive class:" not in printed  # chosen by the user: no warning
    with open(tmp_path / "nodule" / "predictions.csv", newline="") as f:
        predictions = list(csv.DictReader(f))
    pooled = metrics["summary"]
    # the reported sensitivity is the share of *nodule* cases called nodule, specificity that of normal cases
    assert pooled["sensitivity"]["pooled"] == pytest.approx(_sensitivity(predictions, "nodule"))
    assert pooled["specificity"]["pooled"] == pytest.approx(_sensitivity(predictions, "normal"))


def test_the_positive_class_flips_sensitivity_and_specificity_exactly(named, tmp_path, capsys):
    """Choosing the other class as positive changes no weight: the same folds give the same probability of each
    class (to float rounding; before: 0.55 vs 0.47 for one case), so sensitivity and specificity trade places
    exactly and AUC does not move."""
    default, _ = _run(named, tmp_path / "normal", capsys)  # 'normal' sorts second: the default positive
    chosen, _ = _run(named, tmp_path / "nodule", capsys, positive_class="nodule")
    probabilities = {}
    for name in ("normal", "nodule"):
        with open(tmp_path / name / "predictions.csv", newline="") as f:
            probabilities[name] = {(r["case_id"], r["arm"]): float(r["prob_nodule"]) for r in csv.DictReader(f)}
    assert probabilities["normal"].keys() == probabilities["nodule"].keys()
    for key, value in probabilities["normal"].items():  # float summation order in the backward pass: ~1e-6
        assert probabilities["nodule"][key] == pytest.approx(value, abs=1e-4)
    for metric_a, metric_b in (("sensitivity", "specificity"), ("specificity", "sensitivity")):
        assert chosen["summary"][metric_a]["pooled"] == default["summary"][metric_b]["pooled"]
    assert chosen["summary"]["auc"]["pooled"] == pytest.approx(default["summary"]["auc"]["pooled"], abs=1e-6)


def test_a_positive_class_that_is_not_a_label_is_refused(named, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"task": "classification", "model": {"pretrained": "none"},
                                    "data": {"manifest": str(named), "positive_class": "lesion"}}))
    assert main(["cv", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "not a class of manifest" in capsys.readouterr().err and not (tmp_path / "run").exists()
