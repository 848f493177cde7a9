"""Every Task keeps its own contract: rows carry the declared columns, pooled = fold metrics on one fold,
averaging over repeats ignores row order, losses are finite, and unknown task names suggest the closest."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medtl.errors import UnknownNameError
from medtl.tasks import TASKS, get_task

CLASSES = ["benign", "malignant"]


def make_cases(task, n=12, seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        mask = np.zeros((1, 8, 8), np.int16)
        if i % 3:
            mask[0, 2:5, 2:6] = 1
        cases.append(SimpleNamespace(label=i % 2 if task.target_column == "label" else None, mask=mask,
                                     spacing=(1.0, 1.0), image=rng.normal(size=(1, 8, 8)).astype(np.float32)))
    return cases


def make_outputs(task, cases, seed=0):
    rng = np.random.default_rng(seed)
    if task.uses_mask:
        return [np.where(rng.random((8, 8)) < 0.2, 1 - c.mask[0], c.mask[0]) for c in cases]
    return [np.array([1 - p, p]) for p in rng.uniform(0, 1, len(cases))]


def rows(task, cases, outputs):
    return [{"case_id": f"c{i}", "patient_key": f"p{i // 2}", **task.case_row(c, o, CLASSES, 2)}
            for i, (c, o) in enumerate(zip(cases, outputs))]


@pytest.fixture(params=["classification", "segmentation"])
def task(request):
    return get_task(request.param)


def test_rows_hold_the_result_columns_and_metrics_cover_the_declared_names(task):
    cases = make_cases(task)
    case_rows = rows(task, cases, make_outputs(task, cases))
    assert all(set(task.result_columns(CLASSES)) <= set(r) for r in case_rows)
    metrics = task.fold_metrics(case_rows, CLASSES)
    assert set(task.metric_names) <= set(metrics) and task.primary_metric in task.metric_names
    for name in task.metric_names:
        pooled = task.pooled_statistic(name, case_rows, CLASSES)(np.arange(len(case_rows)))
        assert pooled == pytest.approx(metrics[name], nan_ok=True)


def test_averaging_repeats_ignores_row_order(task):
    cases = make_cases(task)
    first, second = rows(task, cases, make_outputs(task, cases, 1)), rows(task, cases, make_outputs(task, cases, 2))
    forward = task.average_rows(first + second, CLASSES)
    backward = {r["case_id"]: r for r in task.average_rows(second[::-1] + first[::-1], CLASSES)}
    for row in forward:
        for column in task.averaged_columns(CLASSES):
            assert row[column] == pytest.approx(backward[row["case_id"]][column], nan_ok=True)
            both = [r[column] for r in (first + second) if r["case_id"] == row["case_id"]]
            finite = [v for v in both if not math.isnan(v)]
            assert row[column] == pytest.approx(np.mean(finite) if finite else math.nan, nan_ok=True)


def test_one_row_per_case_averages_to_its_own_values(task):
    """One cv repeat: each case's averaged row holds its own values as floats, NaN where a value is undefined
    (the same numbers NumPy's NaN-excluding mean of one value gives)."""
    from medtl.tasks.base import Task

    cases = make_cases(task)
    once = rows(task, cases, make_outputs(task, cases, 1))
    columns = task.averaged_columns(CLASSES)
    odd = [{**r, columns[0]: value} for r, value in zip(once, [None, math.inf, 3, "0.25", math.nan] * len(once))]
    for given in (once, odd):
        averaged = Task._average(given, columns)
        assert [r["case_id"] for r in averaged] == [r["case_id"] for r in given]
        for row, source in zip(averaged, given):
            for column in columns:
                values = np.array([source[column]], dtype=float)
                expected = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
                assert type(row[column]) is float and (row[column] == expected or (math.isnan(expected)
                                                                                   and math.isnan(row[column])))


def test_loss_is_finite_and_strata_are_labels_or_foreground(task):
    cases = make_cases(task)
    assert {task.stratum(c) for c in cases} == {0, 1}
    logits = torch.randn(4, 2, 8, 8) if task.uses_mask else torch.randn(4, 2)
    target = torch.randint(0, 2, (4, 8, 8) if task.uses_mask else (4,))
    loss = task.loss("ce")(logits, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert task.num_classes(CLASSES, cases) == 2
    counts = task.data_counts(cases, CLASSES)
    assert sum(counts.values()) == len(cases)


def test_classification_weights_and_sampling_labels():
    task = get_task("classification")
    cases = [SimpleNamespace(label=label) for label in (0, 0, 0, 1)]
    weights = task.class_weights(cases, 2, "balanced")
    assert torch.allclose(weights, torch.tensor([4 / 6, 2.0]))
    assert task.class_weights(cases, 2, "none") is None and task.sampling_labels(cases) == [0, 0, 0, 1]
    assert get_task("segmentation").sampling_labels(cases) is None


def test_registry():
    assert TASKS.names() == ["classification", "segmentation"]
    with pytest.raises(UnknownNameError, match="did you mean 'segmentation'"):
        get_task("segmentaton")



def test_a_segmentation_arm_that_predicts_nothing_is_named():
    task = get_task("segmentation")
    nothing = [{"pred_empty": 1.0, "truth_empty": float(i % 2)} for i in range(6)]
    (warning,) = task.arm_warnings("scratch", nothing)
    assert "predicts no foreground" in warning and "3 cases with a lesion" in warning
    assert task.arm_warnings("scratch", nothing[:-1] + [{"pred_empty": 0.0, "truth_empty": 0.0}]) == []
    assert get_task("classification").arm_warnings("a", [{"label_index": 0}]) == []


def test_segmentation_overlays_show_the_most_foreground_cases_even_at_different_extents(tmp_path):
    """Patch mode keeps each case's own extent: the drawn slices are centre-cropped to a common size to stack."""
    from medtl.tasks.segmentation import SegmentationTask

    def case(shape, lesion_voxels):
        mask = np.zeros((1, *shape), np.int16)
        mask.reshape(-1)[:lesion_voxels] = 1
        return SimpleNamespace(image=np.ones((1, *shape), np.float32), mask=mask)

    cases = [case((4, 10, 12), 3), case((6, 16, 9), 40), case((5, 8, 20), 25)]
    task = SegmentationTask()
    chosen = task.overlay_cases(cases)
    assert chosen == [1, 2]  # most foreground first
    task.save_overlays(tmp_path / "overlays.npz", cases, {i: cases[i].mask[0] for i in chosen})
    with np.load(tmp_path / "overlays.npz") as drawn:
        assert drawn["image"].shape == drawn["truth"].shape == drawn["pred"].shape == (2, 8, 9)
        assert drawn["truth"].any()


def test_hd95_undefined_stands_beside_hd95_so_missed_lesions_cannot_improve_it():
    """Issue 27.5: an arm that predicts nothing on the hard lesions gets a better HD95 than one that finds them far
    off; ``hd95_undefined`` gives the share of lesions without any prediction, so the two are read together."""
    seg = get_task("segmentation")
    truth = np.zeros((16, 16), np.int64)
    truth[4:8, 4:8] = 1
    found = np.zeros_like(truth)
    found[5:8, 5:8] = 1
    far = np.zeros_like(truth)
    far[12:15, 12:15] = 1
    case = SimpleNamespace(mask=truth[None], spacing=(1.0, 1.0), label=None)
    empty_case = SimpleNamespace(mask=np.zeros_like(truth)[None], spacing=(1.0, 1.0), label=None)
    easy = seg.case_row(case, found, [], 2)
    missing = [seg.case_row(case, np.zeros_like(truth), [], 2) for _ in range(4)]
    far_off = [seg.case_row(case, far, [], 2) for _ in range(4)]
    quiet_empty = seg.case_row(empty_case, np.zeros_like(truth), [], 2)  # lesion-free: not a lesion missed
    skipping = seg.fold_metrics([easy, *missing, quiet_empty], [])
    trying = seg.fold_metrics([easy, *far_off, quiet_empty], [])
    assert skipping["hd95"] < trying["hd95"]  # HD95 alone rewards skipping the hard lesions ...
    assert skipping["hd95_undefined"] == pytest.approx(4 / 5) and trying["hd95_undefined"] == 0.0  # ... this doesn't
    assert "hd95_undefined" in seg.metric_names
