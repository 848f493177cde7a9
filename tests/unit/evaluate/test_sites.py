"""Per-site metrics, the drop at an unseen site, and the Sites report section (hostile names, undefined values)."""

import math

import numpy as np
import pytest

from medtl.evaluate.sites import site_comparisons, site_drop, site_metrics
from medtl.evaluate.sites_report import sites_section, weight_warnings
from medtl.evaluate.stats import unpaired_patient_bootstrap
from medtl.tasks.metrics import classification_metrics

SITES = ["north", "<b>south</b>", "east, wing"]


def rows(seed=0, n=60, signal=2.0):
    rng = np.random.default_rng(seed)
    out, site_of = [], {}
    for i in range(n):
        label = i % 2
        site = SITES[i % 3]
        score = 1 / (1 + np.exp(-(signal * (label - 0.5) + rng.normal())))
        out.append({"case_id": f"c{i}", "patient_key": f"p{i // 2}", "label_index": label,
                    "prob_0": 1 - score, "prob_1": score})
        site_of[f"c{i}"] = site
    return out, site_of


def test_each_site_is_scored_on_its_own_cases_with_a_ci():
    data, site_of = rows()
    result = site_metrics("classification", data, site_of, ["0", "1"], 200, 0)
    assert sorted(result) == sorted(SITES)
    for site, entry in result.items():
        mine = [r for r in data if site_of[r["case_id"]] == site]
        labels = np.array([r["label_index"] for r in mine])
        probs = np.array([[r["prob_0"], r["prob_1"]] for r in mine])
        assert entry["metrics"]["auc"]["value"] == pytest.approx(classification_metrics(labels, probs)["auc"])
        lo, hi = entry["metrics"]["auc"]["ci95"]
        assert lo <= entry["metrics"]["auc"]["value"] <= hi
        assert entry["n_cases"] == len(mine) and entry["n_patients"] == len({r["patient_key"] for r in mine})


def test_a_site_with_one_class_is_undefined_not_a_crash():
    data, site_of = rows()
    one_class = [r for r in data if not (site_of[r["case_id"]] == "north" and r["label_index"] == 1)]
    result = site_metrics("classification", one_class, site_of, ["0", "1"], 200, 0)
    assert math.isnan(result["north"]["metrics"]["auc"]["value"])
    assert all(math.isnan(v) for v in result["north"]["metrics"]["auc"]["ci95"])
    metrics = {"primary_metric": "auc", "sites": {"sites": SITES, "scheme": "kfold",
                                                  "cases_per_site": {s: 20 for s in SITES},
                                                  "per_site": {"erm": result}, "comparisons": [],
                                                  "shift_check": [], "shift_check_note": "not computed"}}
    title, body = sites_section(metrics)
    assert "<b>south</b>" not in body and "&lt;b&gt;south&lt;/b&gt;" in body  # the user's label, escaped


def test_the_drop_is_the_held_out_metric_minus_the_test_site_metric():
    good, _ = rows(0, signal=4.0)
    poor, _ = rows(1, signal=0.0)
    poor = [{**r, "case_id": "t" + r["case_id"], "patient_key": "t" + r["patient_key"]} for r in poor]
    drop = site_drop("classification", good, poor, ["0", "1"], 300, 0)
    assert drop["drop"] == pytest.approx(drop["training_sites_held_out"] - drop["test_site"])
    assert drop["drop"] > 0 and drop["ci95"][0] <= drop["drop"] <= drop["ci95"][1]
    assert drop["n_held_out_patients"] == 30 and drop["n_test_patients"] == 30


def test_unpaired_bootstrap_of_identical_sets_is_centred_on_zero():
    values = np.random.default_rng(0).normal(size=40)
    patients = [f"p{i}" for i in range(40)]
    mean = lambda idx: float(values[idx].mean())  # noqa: E731
    result = unpaired_patient_bootstrap(mean, patients, mean, patients, 500, 0)
    assert result["difference"] == 0 and result["ci95"][0] < 0 < result["ci95"][1]


def test_site_comparisons_pair_each_method_with_its_control_at_each_site():
    erm, site_of = rows(0)
    dann = [{**r, "prob_1": min(1.0, r["prob_1"] + 0.1), "prob_0": max(0.0, r["prob_0"] - 0.1)} for r in erm]
    result = site_comparisons("classification", [("dann", "erm")], {"erm": erm, "dann": dann}, site_of,
                              ["0", "1"], 200, 0)
    assert [(c["site"], c["a"], c["b"]) for c in result] == [(s, "dann", "erm") for s in sorted(SITES)]


def test_mostly_clipped_weights_are_a_warning():
    domain = {"reweight": [{"weights": {"n": 20, "n_clipped": 18, "domain_auc": 1.0, "ess": 19.5}},
                           {"weights": {"n": 20, "n_clipped": 2, "domain_auc": 0.7, "ess": 15.0}}]}
    [warning] = weight_warnings(domain)
    assert "fold 0" in warning and "18 of 20" in warning


def test_a_leave_site_out_verdict_is_the_mean_of_per_site_differences_not_one_pooled_auc():
    """Issue 27.8: per-site score offsets alone move a pooled AUC (here by a lot) while each site ranks its
    patients identically in both arms; the site-stratified verdict is exactly the mean of the per-site
    differences (0 here), and the pooled comparison would have called it a win."""
    from medtl.evaluate.sites import site_mean_comparison
    from medtl.evaluate.summary import compare_arms

    rng = np.random.default_rng(0)
    rows_a, rows_b, site_of = [], [], {}
    for s, (site, offset) in enumerate((("a", 0.0), ("b", 0.3), ("c", 0.6))):
        for i in range(20):
            label = i % 2
            score = float(np.clip(0.3 + 0.2 * label + rng.normal(0, 0.15), 0.01, 0.4))
            case = f"{site}{i}"
            site_of[case] = site
            base = {"case_id": case, "patient_key": f"p{case}", "label": str(label), "label_index": label}
            prevalence = 0.3 + 0.2 * s  # sites differ in prevalence too: the pooled AUC feels the offsets
            if rng.random() < prevalence:
                base.update(label="1", label_index=1)
            rows_a.append({**base, "prob_0": 1 - score, "prob_1": score})
            shifted = score + offset  # arm b: the same ranking at every site, a different scale per site
            rows_b.append({**base, "prob_0": 1 - shifted / 2, "prob_1": shifted / 2})
    names = ["0", "1"]
    verdict = site_mean_comparison("classification", "b", rows_b, "a", rows_a, site_of, names, 200, 0)
    assert verdict["mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert verdict["per_site"] == pytest.approx({"a": 0.0, "b": 0.0, "c": 0.0})
    assert verdict["ci95"] == pytest.approx([0.0, 0.0]) and verdict["n_sites"] == 3
    pooled = compare_arms("classification", "b", rows_b, "a", rows_a, names, 200, 0)
    assert abs(pooled["mean_diff"]) > 0.05  # what the old, pooled verdict reported
    per_site = [compare_arms("classification", "b", [r for r in rows_b if site_of[r["case_id"]] == s], "a",
                             [r for r in rows_a if site_of[r["case_id"]] == s], names, 100, 0)["mean_diff"]
                for s in "abc"]
    assert verdict["mean_diff"] == pytest.approx(np.mean(per_site))
