"""Summaries: pooled metric equals scikit-learn, repeat averaging and row order do not matter, paired diff of an arm with itself is zero."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medtl.evaluate.summary import arm_summary, compare_arms, verdict_line


def rows(seed=0, n=40, repeats=1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    out = []
    for repeat in range(repeats):
        scores = np.clip(labels * 0.3 + rng.uniform(0, 0.7, n), 0, 1)
        out += [{"case_id": f"c{i}", "patient_key": f"p{i // 2}", "repeat": repeat, "fold": i % 4,
                 "label_index": int(labels[i]), "prob_0": 1 - scores[i], "prob_1": scores[i]} for i in range(n)]
    return out


def folds(data):
    from medtl.tasks import get_task

    task = get_task("classification")
    return [{"fold": k, **task.fold_metrics([r for r in data if r["fold"] == k], ["0", "1"])} for k in range(4)]


def test_pooled_auc_equals_scikit_learn_and_row_order_does_not_matter():
    data = rows()
    summary = arm_summary("classification", folds(data), data, ["0", "1"], 200, 0)["summary"]["auc"]
    assert summary["pooled"] == pytest.approx(roc_auc_score([r["label_index"] for r in data],
                                                            [r["prob_1"] for r in data]), abs=1e-6)
    assert summary["ci95"][0] <= summary["pooled"] <= summary["ci95"][1]
    shuffled = arm_summary("classification", folds(data), data[::-1], ["0", "1"], 200, 0)["summary"]["auc"]
    assert shuffled["pooled"] == pytest.approx(summary["pooled"])


def test_repeats_are_averaged_per_case():
    data = rows(repeats=2)
    pooled = arm_summary("classification", folds(data[:40]), data, ["0", "1"], 100, 0)["summary"]["auc"]["pooled"]
    mean_scores = [(a["prob_1"] + b["prob_1"]) / 2 for a, b in zip(data[:40], data[40:])]
    assert pooled == pytest.approx(roc_auc_score([r["label_index"] for r in data[:40]], mean_scores), abs=1e-6)


def test_an_arm_compared_with_itself_differs_by_zero():
    data = rows()
    comparison = compare_arms("classification", "a", data, "b", data, ["0", "1"], 200, 0)
    assert comparison["mean_diff"] == 0 and comparison["n_patients"] == 20
    assert verdict_line(comparison).startswith("a vs b: AUC +0.000")



@pytest.mark.parametrize("diff, ci, p, words", [(0.07, [-0.03, 0.17], 0.2, "cannot show whether that is real"),
                                                (0.20, [0.09, 0.30], 0.004, "unlikely to be chance"),
                                                (-0.15, [-0.25, -0.05], 0.01, "scratch is better")])
def test_every_verdict_has_a_plain_reading(diff, ci, p, words):
    from medtl.evaluate.summary import plain_reading

    comparison = {"a": "source-pretrained", "b": "scratch", "metric": "auc", "mean_diff": diff, "ci95": ci,
                  "p_value": p, "n_patients": 40}
    text = plain_reading(comparison)
    assert words in text and "40 patients" in text and "source-pretrained" in text


@pytest.mark.parametrize("extra, decisive", [
    ({"p_value": 0.052, "role": "primary"}, "bootstrap p-value is 0.052"),  # seen in `make demo`: CI [+0.001, +0.233]
    ({"p_value": 0.01, "p_holm": 0.12, "role": "secondary"}, "Holm-adjusted p-value"),
])
@pytest.mark.parametrize("diff, ci", [(0.119, [0.001, 0.233]), (-0.119, [-0.233, -0.001])])
def test_a_verdict_never_calls_chance_unlikely_where_its_own_p_value_does_not(extra, decisive, diff, ci):
    """The percentile CI and the +1-corrected bootstrap p-value can disagree at the edge, and a secondary comparison's
    Holm p-value may exceed 0.05 while its unadjusted CI excludes 0: the words then say borderline."""
    from medtl.evaluate.summary import plain_reading

    comparison = {"a": "source-pretrained", "b": "scratch", "metric": "auc", "mean_diff": diff, "ci95": ci,
                  "n_patients": 40, **extra}
    text = plain_reading(comparison)
    assert "borderline, not established" in text and decisive in text
    assert "unlikely to be chance" not in text and "scratch is better" not in text
    assert plain_reading({**comparison, "p_value": 0.004, "p_holm": 0.02}) != text  # a decisive p: the plain verdict
