"""predict.csv rows hold exactly the declared columns, for every task and input kind."""

from pathlib import Path

import pytest

from medtl.config import load_config
from medtl.models.trained import TrainedRun
from medtl.predict.engine import _prediction_row, prediction_columns


def trained(task):
    config = load_config(None, [f"task={task}", "model.pretrained=none"])
    names = ["neg", "pos"] if task == "classification" else ["background", "class 1"]
    return TrainedRun(Path("."), config, "scratch", [], names, 2, "scratch:ensemble5:abc")


def record(task):
    base = {"key": "k1", "patient_key": "p1", "n_files": 3, "label": "pos", "status": "ok", "reasons": ""}
    if task == "classification":
        return {**base, "probs": [0.25, 0.75]}
    return {**base, "shape": "4x4", "foreground_voxels": 3, "foreground_mm": 3.0, "mask_file": "masks/k1.nii.gz",
            "seg_file": "", "prob_files": "", "metrics": {"dice": 0.5, "iou": 0.3, "hd95": 1.0, "truth_empty": 0.0, "pred_empty": 0.0}}


@pytest.mark.parametrize("task", ["classification", "segmentation"])
@pytest.mark.parametrize("with_files", [True, False])
@pytest.mark.parametrize("truth", [True, False])
def test_rows_match_columns(task, with_files, truth):
    run = trained(task)
    key = "series_key" if with_files else "case_id"
    row = _prediction_row(record(task), run, key, with_files, truth)
    assert list(row) == prediction_columns(run, key, with_files, truth)
    if task == "classification":
        assert row["predicted"] == "pos" and row["prob_pos"] == 0.75
    assert row["model_id"] == "scratch:ensemble5:abc"
