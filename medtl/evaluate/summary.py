"""Out-of-fold predictions -> metrics.json (DESIGN.md 3.5): per fold, across folds, pooled with CIs."""

from __future__ import annotations

import math

import numpy as np

from .metrics import CLASSIFICATION_METRICS, SEGMENTATION_METRICS, classification_metrics
from .stats import paired_patient_bootstrap, patient_bootstrap_ci


def primary_metric(task: str) -> str:
    return "auc" if task == "classification" else "dice"


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else SEGMENTATION_METRICS


def pooled_statistic(task: str, metric: str, rows: list[dict], prob_columns: list[str]):
    """``rows -> metric`` over any subset of row indices (for bootstrap)."""
    if task == "classification":
        labels = np.array([r["label_index"] for r in rows])
        probs = np.array([[r[c] for c in prob_columns] for r in rows], dtype=float)
        return lambda idx: classification_metrics(labels[idx], probs[idx])[metric]
    values = np.array([r[metric] for r in rows], dtype=float)
    return lambda idx: float(np.nanmean(values[idx])) if np.isfinite(values[idx]).any() else math.nan


def average_repeats(rows: list[dict], task: str, prob_columns: list[str]) -> list[dict]:
    """One row per case: probabilities (or case metrics) averaged over CV repeats."""
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        by_case.setdefault(row["case_id"], []).append(row)
    columns = prob_columns if task == "classification" else list(SEGMENTATION_METRICS)
    out = []
    for case_rows in by_case.values():
        merged = dict(case_rows[0])
        for column in columns:
            values = np.array([r[column] for r in case_rows], dtype=float)
            merged[column] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        out.append(merged)
    return out


def arm_summary(task: str, fold_records: list[dict], rows: list[dict], prob_columns: list[str],
                n_boot: int, seed: int) -> dict:
    """``{"summary": {metric: {mean, std, ci95, pooled}}, "folds": [...]}`` for one arm."""
    pooled_rows = average_repeats(rows, task, prob_columns)
    patients = [r["patient_key"] for r in pooled_rows]
    summary = {}
    for metric in metric_names(task):
        per_fold = np.array([f[metric] for f in fold_records], dtype=float)
        statistic = pooled_statistic(task, metric, pooled_rows, prob_columns)
        lo, hi = patient_bootstrap_ci(statistic, patients, n_boot, seed)
        finite = per_fold[np.isfinite(per_fold)]
        summary[metric] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
            "ci95": [lo, hi],
            "pooled": float(statistic(np.arange(len(pooled_rows)))),
        }
    return {"summary": summary, "folds": fold_records}


def compare_arms(task: str, name_a: str, rows_a: list[dict], name_b: str, rows_b: list[dict],
                 prob_columns: list[str], n_boot: int, seed: int) -> dict:
    """Paired difference a - b on the primary metric, over the cases both arms predicted."""
    metric = primary_metric(task)
    a = {r["case_id"]: r for r in average_repeats(rows_a, task, prob_columns)}
    b = {r["case_id"]: r for r in average_repeats(rows_b, task, prob_columns)}
    shared = sorted(set(a) & set(b))
    rows_a_shared, rows_b_shared = [a[c] for c in shared], [b[c] for c in shared]
    result = paired_patient_bootstrap(pooled_statistic(task, metric, rows_a_shared, prob_columns),
                                      pooled_statistic(task, metric, rows_b_shared, prob_columns),
                                      [a[c]["patient_key"] for c in shared], n_boot, seed)
    return {"a": name_a, "b": name_b, "metric": metric, **result, "n_cases": len(shared),
            "n_patients": len({a[c]["patient_key"] for c in shared})}


def verdict_line(comparison: dict) -> str:
    metric = comparison["metric"].upper() if comparison["metric"] == "auc" else comparison["metric"]
    diff = comparison["mean_diff"]
    lo, hi = comparison["ci95"]
    p = comparison["p_value"]
    p_text = "p<0.001" if p < 0.001 else f"p={p:.3f}"
    return f"{comparison['a']} vs {comparison['b']}: {metric} {diff:+.3f} [{lo:+.3f}, {hi:+.3f}], {p_text}"
