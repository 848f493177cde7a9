"""Metrics per site: each site's own figures with patient-bootstrap CIs, the drop at an unseen site, paired
comparisons per site.

Rows are the out-of-fold rows of ``medtl cv`` (or the scored rows of ``medtl evaluate``)
and ``site_of`` maps a case id to its site, as the manifest's ``site`` column gives it.
"""

from __future__ import annotations

import numpy as np

from ..tasks import get_task
from .stats import patient_bootstrap_cis, site_stratified_paired_bootstrap, unpaired_patient_bootstrap
from .summary import compare_arms


def rows_at(rows: list[dict], site_of: dict[str, str], site: str) -> list[dict]:
    """The rows of one site's cases."""
    return [r for r in rows if site_of.get(r["case_id"]) == site]


def site_metrics(task: str, rows: list[dict], site_of: dict[str, str], class_names: list[str], n_boot: int,
                 seed: int) -> dict:
    """``{site: {"n_cases", "n_patients", "metrics": {metric: {"value", "ci95"}}}}`` over sorted sites."""
    spec = get_task(task)
    out = {}
    for site in sorted(set(site_of.values())):
        pooled = spec.average_rows(rows_at(rows, site_of, site), class_names)
        if not pooled:
            continue
        patients = [r["patient_key"] for r in pooled]
        statistics = spec.pooled_statistics(pooled, class_names)
        values = statistics(np.arange(len(pooled)))
        intervals = patient_bootstrap_cis(statistics, patients, n_boot, seed)
        metrics = {m: {"value": float(values[m]), "ci95": list(intervals[m])} for m in spec.metric_names}
        out[site] = {"n_cases": len(pooled), "n_patients": len(set(patients)), "metrics": metrics}
    return out


def site_drop(task: str, inner_rows: list[dict], test_rows: list[dict], class_names: list[str], n_boot: int,
              seed: int) -> dict:
    """How much worse the primary metric is at an unseen site than on held-out patients of the training sites.

    ``drop = metric(training sites' held-out patients) - metric(test site)``; positive =
    worse at the new hospital. ``inner_rows`` are the reference patients, never the ones the
    epoch was chosen on (``medtl.data.splits.selection_and_reference``). The two patient sets are disjoint, so each is resampled
    on its own for the CI.
    """
    spec = get_task(task)
    metric = spec.primary_metric
    inner = spec.average_rows(inner_rows, class_names)
    test = spec.average_rows(test_rows, class_names)
    result = unpaired_patient_bootstrap(spec.pooled_statistic(metric, inner, class_names),
                                        [r["patient_key"] for r in inner],
                                        spec.pooled_statistic(metric, test, class_names),
                                        [r["patient_key"] for r in test], n_boot, seed)
    in_site = float(spec.pooled_statistic(metric, inner, class_names)(np.arange(len(inner))))
    return {"metric": metric, "reference": "held-out patients of the training sites not used for model selection",
            "training_sites_held_out": in_site, "test_site": in_site - result["difference"],
            "drop": result["difference"], "ci95": result["ci95"], "n_held_out_patients":
                len({r["patient_key"] for r in inner}), "n_test_patients": len({r["patient_key"] for r in test})}


def site_comparisons(task: str, pairs: list[tuple[str, str]], arm_rows: dict[str, list[dict]],
                     site_of: dict[str, str], class_names: list[str], n_boot: int, seed: int) -> list[dict]:
    """Paired patient-bootstrap comparison ``a - b`` of each pair of arms at each site."""
    out = []
    for site in sorted(set(site_of.values())):
        for a, b in pairs:
            rows_a, rows_b = rows_at(arm_rows[a], site_of, site), rows_at(arm_rows[b], site_of, site)
            if rows_a and rows_b:
                out.append({"site": site, **compare_arms(task, a, rows_a, b, rows_b, class_names, n_boot, seed)})
    return out


def site_mean_comparison(task: str, a: str, rows_a: list[dict], b: str, rows_b: list[dict], site_of: dict[str, str],
                         class_names: list[str], n_boot: int, seed: int) -> dict:
    """``a - b`` on the primary metric as the mean of the per-site differences (each on the cases both arms scored
    at that site), with patients resampled within sites: the verdict of a leave-one-site-out run."""
    spec = get_task(task)
    metric = spec.primary_metric
    per_site, sites, cases, patients = [], [], 0, set()
    for site in sorted(set(site_of.values())):
        at_a = {r["case_id"]: r for r in spec.average_rows(rows_at(rows_a, site_of, site), class_names)}
        at_b = {r["case_id"]: r for r in spec.average_rows(rows_at(rows_b, site_of, site), class_names)}
        shared = sorted(set(at_a) & set(at_b))
        if not shared:
            continue
        first, second = [at_a[c] for c in shared], [at_b[c] for c in shared]
        per_site.append((spec.pooled_statistic(metric, first, class_names),
                         spec.pooled_statistic(metric, second, class_names), [r["patient_key"] for r in first]))
        sites.append(site)
        cases += len(shared)
        patients |= {r["patient_key"] for r in first}
    result = site_stratified_paired_bootstrap(per_site, n_boot, seed)
    result["per_site"] = dict(zip(sites, result["per_site"]))
    return {"a": a, "b": b, "metric": metric, **result, "scope": "mean of per-site differences", "n_sites": len(sites),
            "n_cases": cases, "n_patients": len(patients)}
