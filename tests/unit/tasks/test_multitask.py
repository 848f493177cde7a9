"""MultiTask answers per task with that task's own code: rows per target, bootstrap indices mapped per task."""

import numpy as np
import pytest

from medtl.config import load_config
from medtl.tasks import get_task, task_of

TASKS = "[{name: nodule, kind: classification, column: label}, {name: lesion, kind: segmentation, column: mask}]"


@pytest.fixture
def multi():
    return task_of(load_config(None, ["task=multitask", f"tasks={TASKS}"]))


def rows():
    rng = np.random.default_rng(0)
    out = []
    for i in range(12):
        out.append({"case_id": f"c{i}", "patient_key": f"p{i}", "task": "nodule", "label_index": i % 2,
                    "prob_0": 1 - (p := float(rng.random())), "prob_1": p})
        out.append({"case_id": f"c{i}", "patient_key": f"p{i}", "task": "lesion", "dice": float(rng.random()),
                    "iou": 0.5, "hd95": 1.0, "truth_empty": 0.0, "pred_empty": 0.0})
    return out


def test_a_pooled_statistic_on_resampled_rows_equals_the_task_on_its_own_rows(multi):
    all_rows = rows()
    nodule = [r for r in all_rows if r["task"] == "nodule"]
    resample = np.random.default_rng(1).integers(0, len(all_rows), 40)  # mixed tasks, repeats
    mine = np.array([i for i in resample if all_rows[i]["task"] == "nodule"])
    position = {i: k for k, i in enumerate(i for i, r in enumerate(all_rows) if r["task"] == "nodule")}
    expected = get_task("classification").pooled_statistic("auc", nodule, ["0", "1"])(
        np.array([position[i] for i in mine]))
    names = {"nodule": ["0", "1"], "lesion": []}
    assert multi.pooled_statistic("nodule.auc", all_rows, names)(resample) == pytest.approx(expected, abs=1e-12)


def test_fold_metrics_are_each_tasks_metrics_under_its_name(multi):
    all_rows = rows()
    metrics = multi.fold_metrics(all_rows, {"nodule": ["0", "1"], "lesion": []})
    dice = np.mean([r["dice"] for r in all_rows if r["task"] == "lesion"])
    assert metrics["lesion.dice"] == pytest.approx(dice) and 0 <= metrics["nodule.auc"] <= 1
    assert multi.primary_metric == "nodule.auc"


def test_a_case_without_a_target_gets_no_row_for_that_task(multi):
    class Case:
        labels = {"nodule": None}
        mask = np.zeros((1, 4, 4), np.int16)
        spacing = (1.0, 1.0)

    output = {"nodule": np.array([0.3, 0.7]), "lesion": np.zeros((4, 4), np.int64)}
    made = multi.case_rows(Case(), output, {"nodule": ["0", "1"], "lesion": []}, {"nodule": 2, "lesion": 2})
    assert [r["task"] for r in made] == ["lesion"]
