"""One primary comparison per run; Holm-adjusted p-values for every other one.

A cv report can carry many p-values (arms x tasks x sites); read one by one, some will
fall below 0.05 by chance. The *primary* comparison is the run's first: the main arm
against its control (an adaptation method against plain fine-tuning, pretraining against
its first comparison arm, a multi-task model against its first task's control). Its raw
p-value is the confirmatory test. Every other comparison in ``metrics.json`` (further arms,
other tasks, each site) is secondary: it keeps its raw ``p_value`` and gets ``p_holm``,
the Holm step-down adjustment (statsmodels' ``multipletests``) over all secondary
comparisons together, which controls the family-wise error rate.
"""

from __future__ import annotations

import math


def _comparison_lists(metrics: dict) -> list[tuple[str, list[dict]]]:
    """``(where, comparisons)`` of every place in ``metrics`` that holds comparisons, primary place first."""
    lists = [("", metrics.get("comparisons", []))]
    for name, result in metrics.get("tasks", {}).items():
        lists.append((f"task {name}", result.get("comparisons", [])))
    sites = metrics.get("sites")
    if isinstance(sites, dict):
        lists.append(("sites", sites.get("comparisons", [])))
    return lists


def adjust_multiplicity(metrics: dict, primary_task: str | None = None) -> dict:
    """Mark the primary comparison and add ``p_holm`` to every secondary one, in place; returns the summary
    written to ``metrics["multiplicity"]`` (``method``, ``primary``, ``n_comparisons``, ``n_secondary``, ``note``).

    A comparison object that appears in two places (a multi-task run repeats its first task at the top level)
    counts once. Label-efficiency comparisons are copies of top-level ones and take their values.
    """
    from statsmodels.stats.multitest import multipletests

    seen, ordered = set(), []
    for _, comparisons in _comparison_lists(metrics):
        for comparison in comparisons:
            if id(comparison) not in seen:
                seen.add(id(comparison))
                ordered.append(comparison)
    primary = ordered[0] if ordered else None
    secondary = [c for c in ordered[1:]]
    for comparison in ordered:
        comparison["role"] = "primary" if comparison is primary else "secondary"
    tested = [c for c in secondary if _finite(c.get("p_value"))]
    if tested:
        adjusted = multipletests([c["p_value"] for c in tested], method="holm")[1]
        for comparison, value in zip(tested, adjusted):
            comparison["p_holm"] = float(value)
    for comparison in secondary:
        comparison.setdefault("p_holm", math.nan)
    _copy_to_label_efficiency(metrics)
    summary = {"method": "holm", "n_comparisons": len(ordered), "n_secondary": len(secondary),
               "primary": None if primary is None else {k: primary[k] for k in ("a", "b", "metric")
                                                         if k in primary}}
    if primary is not None and primary_task is not None:
        summary["primary"]["task"] = primary_task
    summary["note"] = _note(summary)
    metrics["multiplicity"] = summary
    return summary


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _copy_to_label_efficiency(metrics: dict) -> None:
    curves = metrics.get("label_efficiency")
    if not curves:
        return
    by_pair = {(c["a"], c["b"]): c for c in metrics.get("comparisons", [])}
    for comparison in curves.get("comparisons", []):
        source = by_pair.get((comparison["a"], comparison["b"]))
        if source is not None:
            comparison["role"] = source["role"]
            if "p_holm" in source:
                comparison["p_holm"] = source["p_holm"]


def _note(summary: dict) -> str:
    if summary["primary"] is None:
        return "no comparison in this run"
    primary = summary["primary"]
    head = f"primary comparison: {primary['a']} vs {primary['b']} ({primary['metric']}), raw p"
    if not summary["n_secondary"]:
        return head + "; no other comparison"
    return (f"{head}; the other {summary['n_secondary']} comparison(s) are secondary: read their Holm-adjusted "
            "p (p_holm), which allows for testing them all")
