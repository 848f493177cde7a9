"""Confidence intervals and paired tests that resample patients, not images.

Images of one patient are correlated, so every bootstrap draws whole patients
with replacement and recomputes the metric on all their cases. Resamples where the
metric is undefined (e.g. AUC with one class) are dropped and counted.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .resamples import evaluate_resamples

Statistic = Callable[[np.ndarray], float]  # row indices -> metric value


def _patient_rows(patients: list[str]) -> list[np.ndarray]:
    index: dict[str, list[int]] = {}
    for row, patient in enumerate(patients):
        index.setdefault(patient, []).append(row)
    return [np.asarray(rows) for rows in index.values()]


def _draws(groups: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    """The patients of ``n`` resamples (indices into ``groups``, with repeats), drawn in order from ``seed``."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, len(groups), len(groups)) for _ in range(n)]


def _resample(groups: list[np.ndarray], statistic: Statistic, n: int, seed: int) -> np.ndarray:
    return np.array(evaluate_resamples(statistic, groups, _draws(groups, n, seed)), dtype=float)


def patient_bootstrap_ci(statistic: Statistic, patients: list[str], n: int = 1000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of ``statistic`` over patient-level bootstrap resamples."""
    values = _resample(_patient_rows(patients), statistic, n, seed)
    values = values[np.isfinite(values)]
    if len(values) < n // 2:
        return (math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def patient_bootstrap_cis(statistics: Callable[[np.ndarray], dict[str, float]], patients: list[str], n: int = 1000,
                          seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """``patient_bootstrap_ci`` of several metrics at once: one ``statistics(indices) -> {metric: value}`` call per
    resample, on the same resamples (and so the same intervals) as one call per metric would give."""
    groups = _patient_rows(patients)
    draws: list[dict[str, float]] = evaluate_resamples(statistics, groups, _draws(groups, n, seed))
    out = {}
    tail = (1 - level) / 2 * 100
    for name in draws[0] if draws else []:
        values = np.array([d[name] for d in draws], dtype=float)
        values = values[np.isfinite(values)]
        if len(values) < n // 2:
            out[name] = (math.nan, math.nan)
        else:
            lo, hi = np.percentile(values, [tail, 100 - tail])
            out[name] = (float(lo), float(hi))
    return out


def degenerate_interval_note(ci: tuple[float, float], n_patients: int) -> str | None:
    """A word where a patient-bootstrap interval has zero width: every resample gave the same value (a perfect
    separation or a metric at its bound on a small set), which says the set is small, not that the value is
    certain."""
    low, high = ci
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or high - low > 1e-12:
        return None
    return (f"the 95% CI has zero width: every patient resample of these {n_patients} patients gave {low:.3f} (e.g. "
            "a perfect separation); this reflects a small set, not certainty: a larger set would show the spread")


def paired_patient_bootstrap(statistic_a: Statistic, statistic_b: Statistic, patients: list[str], n: int = 1000,
                             seed: int = 0) -> dict:
    """Difference a - b on the same resampled patients: point estimate, 95% CI, two-sided p-value.

    The p-value is the bootstrap estimate of how often the difference falls on the other
    side of zero, doubled: ``2 * min(P(d <= 0), P(d >= 0))`` with a +1 correction.
    """
    groups = _patient_rows(patients)
    all_rows = np.arange(len(patients))
    difference = float(statistic_a(all_rows) - statistic_b(all_rows))
    diffs = _resample(groups, lambda rows: statistic_a(rows) - statistic_b(rows), n, seed)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < n // 2:
        return {"mean_diff": difference, "ci95": [math.nan, math.nan], "p_value": math.nan,
                "test": "paired patient bootstrap (too few valid resamples)"}
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    below, above = np.sum(diffs <= 0), np.sum(diffs >= 0)
    p = min(1.0, 2 * (min(below, above) + 1) / (len(diffs) + 1))
    return {"mean_diff": difference, "ci95": [float(lo), float(hi)], "p_value": float(p),
            "test": f"paired patient bootstrap, {len(diffs)} resamples, two-sided"}


def unpaired_patient_bootstrap(statistic_a: Statistic, patients_a: list[str], statistic_b: Statistic,
                               patients_b: list[str], n: int = 1000, seed: int = 0) -> dict:
    """Difference a - b between two disjoint sets of patients, each resampled on its own: estimate and 95% CI."""
    result = mean_unpaired_difference([(statistic_a, patients_a, statistic_b, patients_b)], n, seed)
    return {"difference": result["difference"], "ci95": result["ci95"]}


def mean_unpaired_difference(pairs: list[tuple[Statistic, list[str], Statistic, list[str]]], n: int = 1000,
                             seed: int = 0) -> dict:
    """The mean over ``pairs`` of each pair's difference a - b, where a and b are scored on sets of patients
    resampled each on its own (e.g. per outer fold: the inner-fold estimate of the chosen trial minus the outer
    fold's). Estimate and 95% percentile CI, and under ``parts`` each pair's own estimate and CI from the same
    resamples; a resample in which a difference is undefined is dropped (from the mean's and that pair's)."""
    groups = [(_patient_rows(pa), _patient_rows(pb)) for _, pa, _, pb in pairs]
    differences = [float(a(np.arange(len(pa))) - b(np.arange(len(pb)))) for a, pa, b, pb in pairs]
    rng = np.random.default_rng(seed)
    draws = np.empty((n, len(pairs)))
    for i in range(n):
        for j, ((a, _, b, _), (groups_a, groups_b)) in enumerate(zip(pairs, groups)):
            rows_a = np.concatenate([groups_a[k] for k in rng.integers(0, len(groups_a), len(groups_a))])
            rows_b = np.concatenate([groups_b[k] for k in rng.integers(0, len(groups_b), len(groups_b))])
            draws[i, j] = a(rows_a) - b(rows_b)

    def interval(values: np.ndarray) -> list[float]:
        values = values[np.isfinite(values)]
        if len(values) < n // 2:
            return [math.nan, math.nan]
        lo, hi = np.percentile(values, [2.5, 97.5])
        return [float(lo), float(hi)]

    means = draws.mean(axis=1) if len(pairs) else np.full(n, math.nan)
    return {"difference": float(np.mean(differences)) if differences else math.nan, "ci95": interval(means),
            "parts": [{"difference": d, "ci95": interval(draws[:, j])} for j, d in enumerate(differences)]}


def site_stratified_paired_bootstrap(per_site: list[tuple[Statistic, Statistic, list[str]]], n: int = 1000,
                                     seed: int = 0) -> dict:
    """The mean over sites of each site's difference a - b, with a bootstrap that resamples patients *within*
    each site (``per_site``: ``(statistic_a, statistic_b, patients)`` of one site's shared cases).

    Pooling every site into one metric mixes score scales: two arms that rank each site's patients identically
    can differ in pooled AUC through per-site offsets alone. Each site's difference is unaffected by the others'
    scales, and so is their mean. Estimate, 95% CI and two-sided p-value as in ``paired_patient_bootstrap``;
    a resample in which any site's difference is undefined is dropped.
    """
    groups = [_patient_rows(patients) for _, _, patients in per_site]
    site_diffs = [float(a(np.arange(len(p))) - b(np.arange(len(p)))) for a, b, p in per_site]
    difference = float(np.mean(site_diffs)) if site_diffs and all(map(math.isfinite, site_diffs)) else math.nan
    rng = np.random.default_rng(seed)
    diffs = np.empty(n)
    for i in range(n):
        values = []
        for (a, b, _), site_groups in zip(per_site, groups):
            rows = np.concatenate([site_groups[j] for j in rng.integers(0, len(site_groups), len(site_groups))])
            values.append(a(rows) - b(rows))
        diffs[i] = float(np.mean(values)) if values else math.nan
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < n // 2 or not math.isfinite(difference):
        return {"mean_diff": difference, "ci95": [math.nan, math.nan], "p_value": math.nan, "per_site": site_diffs,
                "test": "site-stratified paired patient bootstrap (too few valid resamples)"}
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    below, above = np.sum(diffs <= 0), np.sum(diffs >= 0)
    p = min(1.0, 2 * (min(below, above) + 1) / (len(diffs) + 1))
    return {"mean_diff": difference, "ci95": [float(lo), float(hi)], "p_value": float(p), "per_site": site_diffs,
            "test": f"mean of per-site differences; paired bootstrap of patients within each site, {len(diffs)} "
                    "resamples, two-sided"}
