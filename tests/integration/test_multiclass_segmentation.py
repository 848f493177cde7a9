"""Issue 27.4, end to end: a multi-class segmentation run reports each class on the cases that have it."""

import csv
import json
import math

import numpy as np
import SimpleITK as sitk
import yaml

from medtl.cli import main
from tests.copies import write_manifest


def test_a_multi_class_run_writes_per_class_columns_metrics_and_a_report_table(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(12):
        image = (rng.random((32, 32)) * 100).astype(np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[4:14, 4:14] = 1
        image[4:14, 4:14] = 200
        if i % 3 == 0:  # class 2 in 4 of the 12 cases
            mask[18:28, 18:28] = 2
            image[18:28, 18:28] = 250
        sitk.WriteImage(sitk.GetImageFromArray(image), str(tmp_path / f"img{i}.png"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(tmp_path / f"mask{i}.png"))
        rows.append({"image": f"img{i}.png", "mask": f"mask{i}.png", "patient_id": f"P{i}"})
    write_manifest(tmp_path / "manifest.csv", rows)
    config = {"task": "segmentation", "data": {"manifest": str(tmp_path / "manifest.csv"), "dims": 2,
                                               "image_size": [32, 32], "intensity": "range"},
              "model": {"backbone": "tiny-resnet", "pretrained": "none"}, "train": {"epochs": 1, "batch_size": 4},
              "cv": {"folds": 2, "bootstrap": 100}}
    (tmp_path / "seg.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["cv", str(tmp_path / "seg.yaml"), "--out", str(out), "--quiet"]) == 0
    with open(out / "predictions.csv", newline="") as f:
        predicted = list(csv.DictReader(f))
    assert {"dice_1", "dice_2", "stray_2", "hd95_2"} <= set(predicted[0])
    assert sum(r["dice_2"] != "" for r in predicted) == 4  # scored only where the truth has class 2
    assert all(r["stray_2"] != "" for r in predicted if r["dice_2"] == "")
    for r in predicted:  # the case mean is over the classes present in that case's truth
        present = [float(r[f"dice_{c}"]) for c in (1, 2) if r[f"dice_{c}"] != ""]
        assert math.isclose(float(r["dice"]), np.mean(present), rel_tol=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    per_class = metrics["arms"][metrics["main_arm"]]["per_class"]
    assert per_class["2"]["n_cases"] == 4 and per_class["2"]["n_cases_without"] == 8
    assert per_class["1"]["n_cases"] == 12 and "stray_rate" in per_class["2"]
    assert "Per class (each class scored on the cases whose truth has it" in (out / "report.html").read_text()
