"""A segmentation manifest needs ``image, mask, patient_id`` only: no ``label`` column (README, docs/config.md)."""

import csv
import json

import yaml

from medtl.cli import main
from medtl.samples.sample_data import write_ct_set


def _rewrite_without(path, drop: str) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c != drop]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{c: r[c] for c in columns} for r in rows])


def _config(root, manifest):
    config = {"task": "segmentation",
              "data": {"manifest": str(manifest), "dims": 3, "image_size": [8, 24, 24], "intensity": "window"},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"},
              "train": {"epochs": 1, "batch_size": 2}, "cv": {"folds": 2, "bootstrap": 100}}
    path = root / "seg3d.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_3d_nifti_segmentation_manifest_without_a_label_column_runs(tmp_path):
    root = write_ct_set(tmp_path / "ct", 6, (8, 24, 24), seed=5)
    _rewrite_without(root / "manifest.csv", "label")
    assert main(["cv", str(_config(tmp_path, root / "manifest.csv")), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["primary_metric"] == "dice" and metrics["n_cases"] == 6
    with open(tmp_path / "run" / "predictions.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6  # every case scored once


def test_a_segmentation_manifest_whose_masks_are_all_empty_is_refused_clearly(tmp_path, capsys):
    root = write_ct_set(tmp_path / "ct", 4, (8, 24, 24), seed=5)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    empty = [r for r in rows if r["label"] == "0"][0]["mask"]  # a lesion-free case's mask
    for row in rows:
        row["mask"] = empty
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _rewrite_without(root / "manifest.csv", "label")
    code = main(["cv", str(_config(tmp_path, root / "manifest.csv")), "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no foreground" in err and "mask" in err
