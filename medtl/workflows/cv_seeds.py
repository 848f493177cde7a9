"""``cv.seeds``: training noise beside the patient CIs.

Every arm is trained ``N`` times on the same folds (same inner splits and labelled
subsets; another seed for initialisation, batch order and augmentation: ``<arm>.seed<s>``
in the run folder). The seed arms are merged back into their arm: a case's prediction is
the mean over seeds (and CV repeats), so every metric, CI and comparison is of the
seed-averaged model, and the patient bootstrap covers patients. What the bootstrap cannot
show, how much the figure moves with the seed alone, is ``seed_spread``: the primary
metric of each seed's own predictions, and each comparison's difference per seed. A
difference no larger than twice the standard deviation of its per-seed differences is
flagged ``within_seed_noise``: another seed could have reversed it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..arms import base_of_seed_arm
from ..results import ArmResult, FoldResult
from ..tasks import get_task
from .cv_tasks import primary_view

NOISE_FACTOR = 2.0  # |difference| <= this x SD of the per-seed differences: within seed noise


def _tagged(fold: FoldResult, arm: str, replicate: int) -> FoldResult:
    """The fold's record and rows marked with the training replicate they come from, under the arm's own name."""
    return replace(fold, record={**fold.record, "seed": replicate},
                   rows=[{**row, "arm": arm, "seed": replicate} for row in fold.rows],
                   inner_rows=[{**row, "arm": arm, "seed": replicate} for row in fold.inner_rows])


def merge_seeds(results: dict[str, ArmResult]) -> tuple[dict[str, ArmResult], dict[str, dict[int, ArmResult]]]:
    """``(merged, per_seed)``: each arm with its seed arms' folds appended (records and rows tagged ``seed``), and
    ``{arm: {seed: that seed's ArmResult}}``. Without seed arms the results come back unchanged."""
    per_seed: dict[str, dict[int, ArmResult]] = {}
    for name, result in results.items():
        base, replicate = base_of_seed_arm(name)
        per_seed.setdefault(base, {})[replicate] = result
    if all(len(seeds) == 1 for seeds in per_seed.values()):
        return results, per_seed
    merged = {}
    for base, seeds in per_seed.items():
        folds = tuple(_tagged(f, base, s) for s in sorted(seeds) for f in seeds[s].folds)
        merged[base] = ArmResult(base, seeds[0].config, folds)
    return merged, per_seed


def _pooled(task, metric: str, rows: list[dict], class_names) -> float:
    averaged = task.average_rows(rows, class_names)
    return float(task.pooled_statistic(metric, averaged, class_names)(np.arange(len(averaged))))


def seed_spread(config, class_names, per_seed: dict[str, dict[int, ArmResult]], comparisons: list[dict]) -> dict:
    """``{n, metric, arms: {arm: {values, mean, sd, min, max}}, comparisons: [{a, b, per_seed, sd,
    within_seed_noise}]}`` on the primary metric (a multi-task run's first task); also marks each of
    ``comparisons`` (the run's, same order) with ``seed_sd`` and ``within_seed_noise``."""
    kind, rows_of, names = primary_view(config, class_names)
    task = get_task(kind)
    metric = task.primary_metric
    values = {arm: {s: _pooled(task, metric, rows_of(result.rows), names) for s, result in sorted(seeds.items())}
              for arm, seeds in per_seed.items() if rows_of(next(iter(seeds.values())).rows)}
    arms = {arm: {"values": list(v.values()), "mean": float(np.mean(list(v.values()))),
                  "sd": float(np.std(list(v.values()), ddof=1)) if len(v) > 1 else float("nan"),
                  "min": float(min(v.values())), "max": float(max(v.values()))} for arm, v in values.items()}
    out = []
    for comparison in comparisons:
        a, b = comparison["a"], comparison["b"]
        if a not in per_seed or b not in per_seed or comparison.get("metric") != metric:
            continue
        differences = []
        for s in sorted(set(per_seed[a]) & set(per_seed[b])):
            rows_a = {r["case_id"]: r for r in rows_of(per_seed[a][s].rows)}
            rows_b = {r["case_id"]: r for r in rows_of(per_seed[b][s].rows)}
            shared = sorted(set(rows_a) & set(rows_b))
            differences.append(_pooled(task, metric, [rows_a[c] for c in shared], names)
                               - _pooled(task, metric, [rows_b[c] for c in shared], names))
        sd = float(np.std(differences, ddof=1)) if len(differences) > 1 else float("nan")
        noise = bool(sd == sd and abs(comparison["mean_diff"]) <= NOISE_FACTOR * sd)
        comparison.update(seed_sd=sd, within_seed_noise=noise)
        out.append({"a": a, "b": b, "per_seed": differences, "sd": sd, "within_seed_noise": noise})
    return {"n": max(len(seeds) for seeds in per_seed.values()), "metric": metric, "arms": arms, "comparisons": out,
            "rule": f"within seed noise: |difference| <= {NOISE_FACTOR:g} x SD of the per-seed differences"}
