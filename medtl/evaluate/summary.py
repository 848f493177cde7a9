"""Out-of-fold predictions -> metrics.json (docs/outputs.md): per fold, across folds, pooled with CIs.

Every function takes the task's name; what a metric means for it comes from its
``Task`` (``medtl.tasks``).
"""

from __future__ import annotations

import math

import numpy as np

from ..tasks import get_task
from .stats import paired_patient_bootstrap, patient_bootstrap_cis


def primary_metric(task: str) -> str:
    """``auc`` for classification, ``dice`` for segmentation."""
    return get_task(task).primary_metric


def metric_names(task: str) -> tuple[str, ...]:
    """The metrics reported for ``task``, in report order."""
    return get_task(task).metric_names


def arm_summary(task: str, fold_records: list[dict], rows: list[dict], class_names: list[str],
                n_boot: int, seed: int) -> dict:
    """``{"summary": {metric: {mean, std, ci95, pooled}}, "folds": [...]}`` for one arm.

    ``mean``/``std`` are over the folds; ``pooled`` is the metric of all out-of-fold rows
    (averaged over repeats per case) and ``ci95`` its patient-level bootstrap interval.
    """
    spec = get_task(task)
    pooled_rows = spec.average_rows(rows, class_names)
    patients = [r["patient_key"] for r in pooled_rows]
    summary = {}
    statistics = spec.pooled_statistics(pooled_rows, class_names)
    intervals = patient_bootstrap_cis(statistics, patients, n_boot, seed)
    pooled = statistics(np.arange(len(pooled_rows)))
    for metric in spec.metric_names:
        per_fold = np.array([f[metric] for f in fold_records], dtype=float)
        finite = per_fold[np.isfinite(per_fold)]
        summary[metric] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
            "ci95": list(intervals[metric]),
            "pooled": float(pooled[metric]),
        }
    out = {"summary": summary, "folds": fold_records}
    per_class = class_breakdown(task, pooled_rows, class_names, n_boot, seed)
    if per_class:
        out["per_class"] = per_class
    return out


def class_breakdown(task: str, rows: list[dict], class_names: list[str], n_boot: int, seed: int) -> dict:
    """``{class: {n_cases, n_cases_without, metric: {value, ci95}}}`` where the task has per-class figures
    (multi-class segmentation), with patient-bootstrap intervals; ``{}`` otherwise."""
    classes = get_task(task).class_statistics(rows, class_names)
    if not classes:
        return {}
    patients = [r["patient_key"] for r in rows]
    index = np.arange(len(rows))
    out = {}
    for name, spec in classes.items():
        statistics = spec["statistics"]

        def every(idx: np.ndarray, statistics=statistics) -> dict[str, float]:
            return {m: f(idx) for m, f in statistics.items()}

        intervals = patient_bootstrap_cis(every, patients, n_boot, seed)
        values = every(index)
        out[name] = {**spec["counts"], **{m: {"value": float(values[m]), "ci95": list(intervals[m])}
                                          for m in statistics}}
    return out


def compare_arms(task: str, name_a: str, rows_a: list[dict], name_b: str, rows_b: list[dict],
                 class_names: list[str], n_boot: int, seed: int) -> dict:
    """Paired difference a - b on the primary metric, over the cases both arms predicted."""
    spec = get_task(task)
    metric = spec.primary_metric
    a = {r["case_id"]: r for r in spec.average_rows(rows_a, class_names)}
    b = {r["case_id"]: r for r in spec.average_rows(rows_b, class_names)}
    shared = sorted(set(a) & set(b))
    rows_a_shared, rows_b_shared = [a[c] for c in shared], [b[c] for c in shared]
    result = paired_patient_bootstrap(spec.pooled_statistic(metric, rows_a_shared, class_names),
                                      spec.pooled_statistic(metric, rows_b_shared, class_names),
                                      [a[c]["patient_key"] for c in shared], n_boot, seed)
    return {"a": name_a, "b": name_b, "metric": metric, **result, "n_cases": len(shared),
            "n_patients": len({a[c]["patient_key"] for c in shared})}


def verdict_line(comparison: dict) -> str:
    """One line a reader can quote: ``a vs b: AUC +0.07 [-0.03, +0.17], p=0.150``."""
    metric = comparison["metric"].upper() if comparison["metric"] == "auc" else comparison["metric"]
    diff = comparison["mean_diff"]
    lo, hi = comparison["ci95"]
    p = comparison["p_value"]
    p_text = "p<0.001" if p < 0.001 else f"p={p:.3f}"
    role = comparison.get("role")
    if role == "primary":
        p_text += " (primary comparison)"
    elif role == "secondary" and comparison.get("p_holm") == comparison.get("p_holm"):  # not NaN
        holm = comparison["p_holm"]
        p_text += f", Holm p{'<0.001' if holm < 0.001 else f'={holm:.3f}'} (secondary)"
    if comparison.get("within_seed_noise"):
        p_text += f"; within seed noise (SD over seeds {comparison['seed_sd']:.3f})"
    return f"{comparison['a']} vs {comparison['b']}: {metric} {diff:+.3f} [{lo:+.3f}, {hi:+.3f}], {p_text}"


_METRIC_WORDS = {"auc": "AUC", "dice": "Dice (cases with a lesion)", "iou": "IoU", "accuracy": "accuracy"}


def plain_reading(comparison: dict) -> str:
    """The verdict in words a clinician can repeat, saying what the patients can and cannot show."""
    a, b, metric = comparison["a"], comparison["b"], _METRIC_WORDS.get(comparison["metric"], comparison["metric"])
    diff, (lo, hi), n = comparison["mean_diff"], comparison["ci95"], comparison.get("n_patients", "these")
    if any(v != v for v in (diff, lo, hi)):  # NaN: undefined on these cases
        return f"{a} and {b} cannot be compared on {metric} here: the difference is undefined on these cases."
    interval = f"95% CI {lo:+.3f} to {hi:+.3f}"
    if diff == lo == hi == 0:
        return f"{a} and {b} scored exactly the same {metric} on every resample of these {n} patients."
    unsettled = _p_against_interval(comparison) if lo > 0 or hi < 0 else ""
    if unsettled:
        direction = "higher" if diff >= 0 else "lower"
        return (f"{a} scored {abs(diff):.3f} {direction} {metric} than {b} ({interval}); the interval excludes 0, "
                f"but {unsettled}, above 0.05: on these {n} patients the difference is borderline, not established.")
    if lo > 0:
        return (f"{a} scored {diff:.3f} higher {metric} than {b} ({interval}); the interval excludes 0, so on these "
                f"{n} patients the difference is unlikely to be chance.")
    if hi < 0:
        return (f"{a} scored {-diff:.3f} lower {metric} than {b} ({interval}); the interval excludes 0, so on these "
                f"{n} patients {b} is better.")
    direction = "higher" if diff >= 0 else "lower"
    return (f"{a} scored {abs(diff):.3f} {direction} {metric} than {b}, but {n} patients cannot show whether that is "
            f"real: the {interval} includes 0.")


def _p_against_interval(comparison: dict) -> str:
    """Where the p-value that decides the comparison is 0.05 or more although its 95% CI excludes 0, the words for
    it (else empty). The percentile interval and the bootstrap p-value come from the same resamples, but the p-value
    counts the observed split as one more resample (``paired_patient_bootstrap``), so at the edge the two disagree;
    a secondary comparison is decided by its Holm-adjusted p-value, while its interval is not adjusted."""
    holm = comparison.get("p_holm")
    if comparison.get("role") == "secondary" and holm is not None and holm == holm:
        p, words = holm, "its Holm-adjusted p-value (a secondary comparison, one of several)"
    else:
        p, words = comparison.get("p_value"), "the bootstrap p-value"
    return f"{words} is {p:.3f}" if p is not None and p >= 0.05 else ""  # NaN >= 0.05 is False


def results_block(task: str, main_arm: str, arms: dict[str, dict], comparisons: list[dict],
                  tasks: dict[str, dict] | None = None, primary_task: str | None = None) -> dict:
    """The results part of every ``metrics.json`` (``medtl cv`` and ``medtl evaluate``; docs/outputs.md).

    ``arms``: ``{arm: arm_summary(...)}``, the main arm first. A multi-task result passes
    ``tasks`` (``{task: {primary_metric, summary, folds, arms, comparisons, ...}}``) and its
    ``primary_task``; the top level then repeats the primary task's results, so readers of
    single-task files keep working.
    """
    if tasks is None:
        return {"task": task, "primary_metric": get_task(task).primary_metric, "main_arm": main_arm,
                "summary": arms[main_arm]["summary"], "folds": arms[main_arm]["folds"], "arms": arms,
                "comparisons": comparisons}
    first = tasks[primary_task]
    return {"task": task, "primary_task": primary_task, "primary_metric": first["primary_metric"],
            "main_arm": main_arm, "summary": first["summary"], "folds": first["folds"], "arms": arms,
            "comparisons": comparisons, "tasks": tasks}
