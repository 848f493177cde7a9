"""Issue 27.10: one primary comparison per run, Holm-adjusted p-values (statsmodels' ``multipletests``) for the rest,
over every place metrics.json holds comparisons (arms, tasks, sites), each comparison counted once."""

import math

import pytest
from statsmodels.stats.multitest import multipletests

from medtl.evaluate.multiplicity import adjust_multiplicity
from medtl.evaluate.summary import verdict_line


def comparison(a, b, p, metric="auc"):
    return {"a": a, "b": b, "metric": metric, "mean_diff": 0.1, "ci95": [-0.1, 0.3], "p_value": p,
            "n_patients": 30, "test": "paired patient bootstrap"}


def test_the_first_comparison_is_primary_and_the_others_get_holm_over_all_of_them():
    primary = comparison("dann", "erm", 0.04)
    arms = [primary, comparison("reweight", "erm", 0.03)]
    sites = [{"site": s, **comparison("dann", "erm", p)} for s, p in (("a", 0.01), ("b", 0.2), ("c", float("nan")))]
    metrics = {"comparisons": arms, "sites": {"comparisons": sites}}
    summary = adjust_multiplicity(metrics)
    secondary = [arms[1], sites[0], sites[1]]
    expected = multipletests([c["p_value"] for c in secondary], method="holm")[1]
    assert [c["p_holm"] for c in secondary] == pytest.approx(list(expected))
    assert primary["role"] == "primary" and "p_holm" not in primary
    assert math.isnan(sites[2]["p_holm"])  # undefined p-values are not tested and not counted
    assert summary["n_comparisons"] == 5 and summary["n_secondary"] == 4
    assert summary["primary"] == {"a": "dann", "b": "erm", "metric": "auc"}
    assert metrics["multiplicity"] is summary and "Holm" in summary["note"]
    assert "(primary comparison)" in verdict_line(primary)
    assert f"Holm p={arms[1]['p_holm']:.3f} (secondary)" in verdict_line(arms[1])


def test_a_multitask_run_counts_its_repeated_first_task_once_and_names_it():
    first = [comparison("multitask", "nodule-only", 0.02)]
    second = [comparison("multitask", "lesion-only", 0.04, "dice")]
    metrics = {"comparisons": first, "tasks": {"nodule": {"comparisons": first}, "lesion": {"comparisons": second}}}
    summary = adjust_multiplicity(metrics, primary_task="nodule")
    assert summary["n_comparisons"] == 2 and summary["primary"]["task"] == "nodule"
    assert second[0]["p_holm"] == pytest.approx(0.04)  # one secondary comparison: Holm leaves it as it is


def test_label_efficiency_copies_take_the_values_of_their_comparison():
    main, other = comparison("source", "scratch", 0.01), comparison("source.frac0.5", "scratch.frac0.5", 0.02)
    metrics = {"comparisons": [main, other, comparison("x", "scratch", 0.5)],
               "label_efficiency": {"comparisons": [{"fraction": 0.5, **other}]}}
    adjust_multiplicity(metrics)
    copy = metrics["label_efficiency"]["comparisons"][0]
    assert copy["p_holm"] == other["p_holm"] and copy["role"] == "secondary"


def test_no_comparison_says_so():
    assert adjust_multiplicity({"comparisons": []})["primary"] is None
