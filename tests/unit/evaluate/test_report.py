"""report.html: every section for both tasks, the network's real input size, no patient identifiers."""

import numpy as np
import pytest

from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.data.splits import Fold
from medtl.evaluate.report import write_report
from medtl.evaluate.summary import arm_summary, compare_arms, verdict_line
from medtl.results import ArmResult, FoldResult
from medtl.rundir import RunDir
from medtl.tasks import get_task
from medtl.workflows.cv import CVRun

ADAPTATION = {"source": "none", "file": None, "sha256": None, "loaded": [], "adapted": {}, "new": {"head.*": "new"},
              "dropped": [], "unexpected": []}


def fake_run(tmp_path, task_name):
    task = get_task(task_name)
    config = load_config(None, [f"task={task_name}", "data.image_size=[16,12]", "model.pretrained=none",
                                "cv.folds=2", "cv.bootstrap=100"])
    rng = np.random.default_rng(0)
    cases = []
    for i in range(8):
        mask = np.zeros((1, 16, 12), np.int16)
        mask[0, 3:8, 2:6] = i % 2
        cases.append(PreparedCase(f"c{i}", f"key{i // 2}", f"key{i // 2}", i % 2,
                                  rng.normal(size=(1, 16, 12)).astype(np.float32), mask, "", spacing=(1.0, 1.0)))
    folds = [Fold(0, 0, (4, 5, 6, 7), (0, 1, 2, 3)), Fold(0, 1, (0, 1, 2, 3), (4, 5, 6, 7))]
    rundir = RunDir(tmp_path / "run")
    arms, summaries = {}, {}
    for arm, noise in (("scratch", 0.2), ("linear", 0.4)):
        rows, records, results = [], [], []
        for fold in folds:
            fold_rows = []
            for i in fold.val:
                case = cases[i]
                if task.uses_mask:
                    output = np.where(rng.random((16, 12)) < noise, 0, case.mask[0])
                else:
                    p = float(np.clip(case.label * 0.6 + rng.uniform(0, noise), 0, 1))
                    output = np.array([1 - p, p])
                fold_rows.append({"case_id": case.case_id, "patient_key": case.patient_key, "repeat": 0,
                                  "fold": fold.fold, "arm": arm, **task.case_row(case, output, ["0", "1"], 2)})
            records.append({"fold": fold.fold, "repeat": 0, "n_train": 4, "n_inner": 0, "n_val": 4,
                            "n_val_patients": 2, **task.fold_metrics(fold_rows, ["0", "1"])})
            results.append(FoldResult(records[-1], fold_rows, [{"epoch": 0, "train_loss": 0.7, "lr": 0.001}],
                                      adaptation=ADAPTATION))
            rows += fold_rows
            if task.uses_mask:
                val = [cases[i] for i in fold.val]
                task.save_overlays(rundir.fold(arm, 0, fold.fold).overlays, val,
                                   {i: val[i].mask[0] for i in task.overlay_cases(val)})
        arms[arm] = ArmResult(arm, config, tuple(results))
        summaries[arm] = arm_summary(task_name, records, rows, ["0", "1"], 100, 0)
    comparison = compare_arms(task_name, "scratch", arms["scratch"].rows, "linear", arms["linear"].rows,
                              ["0", "1"], 100, 0)
    rundir.write_splits([{"case_id": cases[i].case_id, "patient_key": cases[i].patient_key, "repeat": 0,
                          "fold": f.fold} for f in folds for i in f.val])
    metrics = {"task": task_name, "primary_metric": task.primary_metric, "main_arm": "scratch", "arms": summaries,
               "summary": summaries["scratch"]["summary"], "folds": summaries["scratch"]["folds"],
               "comparisons": [comparison], "n_cases": 8, "n_patients": 4, "warnings": ["case c9 skipped: X"]}
    return CVRun(config, rundir, ["0", "1"], cases, folds, arms, metrics["warnings"], metrics,
                 verdicts=[verdict_line(comparison)])


@pytest.mark.parametrize("task_name, sections", [
    ("classification", ["ROC curves", "Calibration", "Confusion matrix"]),
    ("segmentation", ["Dice and IoU per case", "Segmentation overlays"])])
def test_report_has_every_section_and_the_network_size(tmp_path, task_name, sections):
    run = fake_run(tmp_path, task_name)
    page = write_report(run).read_text()
    for title in ["Verdict", "Warnings and fallbacks", "Data", "Splits", "Per-fold results", "Comparison",
                  "Learning curves", "Pretrained weights and adaptation", "Resolved config", *sections]:
        assert f"<h2>{title}" in page, title
    assert "network input size (as trained)</td><td>16x12" in page
    assert "scratch vs linear" in page and "case c9 skipped" in page
    if task_name == "segmentation":
        assert page.count('alt="overlay"') >= 2
