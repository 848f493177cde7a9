"""Label-efficiency curves from a run's arms: one curve per base arm, ordered by share, comparisons per share."""

import pytest

from medtl.evaluate.label_efficiency import base_arm, label_efficiency


def arm(value, patients):
    return {"summary": {"auc": {"pooled": value, "ci95": [value - 0.1, value + 0.1]}},
            "folds": [{"n_labelled_patients": p} for p in patients]}


def test_curves_group_arms_by_base_and_order_them_by_share():
    metrics = {"primary_metric": "auc",
               "arms": {"pre": arm(0.8, [30, 32]), "scratch": arm(0.6, [30, 32]),
                        "pre.frac0.25": arm(0.7, [8, 9]), "scratch.frac0.25": arm(0.55, [8, 9])},
               "comparisons": [{"a": "pre", "b": "scratch", "mean_diff": 0.2},
                               {"a": "pre.frac0.25", "b": "scratch.frac0.25", "mean_diff": 0.15},
                               {"a": "pre", "b": "scratch.frac0.25", "mean_diff": 0.25}]}
    fractions = {"pre": 1.0, "scratch": 1.0, "pre.frac0.25": 0.25, "scratch.frac0.25": 0.25}
    result = label_efficiency(metrics, fractions)
    assert result["fractions"] == [0.25, 1.0] and list(result["curves"]) == ["pre", "scratch"]
    assert [p["fraction"] for p in result["curves"]["pre"]] == [0.25, 1.0]
    assert result["curves"]["pre"][0]["labelled_patients"] == pytest.approx(8.5)
    assert result["curves"]["scratch"][1]["value"] == 0.6
    # only comparisons between arms of the same share belong to the curves
    assert [(c["fraction"], c["a"]) for c in result["comparisons"]] == [(1.0, "pre"), (0.25, "pre.frac0.25")]


def test_base_arm_strips_only_the_share_suffix():
    assert base_arm("scratch.frac0.25") == "scratch"
    assert base_arm("l2sp_0.01") == "l2sp_0.01"
    assert base_arm("l2sp_0.01.frac0.5") == "l2sp_0.01"


@pytest.mark.parametrize("low,words", [(0.02, "meta-learning helped against source"),
                                       (-0.05, "did not measurably help")])
def test_the_report_says_whether_meta_learning_helped_at_the_smallest_share(low, words):
    def comparison(a, b, diff, lo):
        return {"a": a, "b": b, "metric": "auc", "mean_diff": diff, "ci95": [lo, diff + 0.1], "n_patients": 40}

    metrics = {"primary_metric": "auc",
               "arms": {name: arm(0.6, [8]) for name in ("meta", "source", "meta.frac0.1", "source.frac0.1",
                                                          "scratch.frac0.1")},
               "comparisons": [comparison("meta", "source", 0.2, 0.1),  # all labels: helped, but not the question
                               comparison("meta.frac0.1", "source.frac0.1", 0.08, low),
                               comparison("meta.frac0.1", "scratch.frac0.1", 0.03, -0.1)]}
    fractions = {"meta": 1.0, "source": 1.0, "meta.frac0.1": 0.1, "source.frac0.1": 0.1, "scratch.frac0.1": 0.1}
    reading = label_efficiency(metrics, fractions)["meta_reading"]
    assert reading.startswith("At the smallest share of labels (0.1)") and words in reading
    assert "scratch.frac0.1" in reading, "both comparisons at that share are read out"
    assert "meta_reading" not in label_efficiency({**metrics, "comparisons": metrics["comparisons"][:1]}, fractions)
