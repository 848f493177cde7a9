"""Label-efficiency curves: each arm's primary metric against the number of labelled training patients.

Built from the arms of ``cv.label_fractions`` (``<arm>.frac<share>``, and the arm itself at
share 1): per arm and share, the pooled out-of-fold metric with its patient-bootstrap CI
and the mean number of labelled patients per fold; the comparisons at each share are the
run's paired comparisons between arms of that share.
"""

from __future__ import annotations

import numpy as np


def base_arm(name: str) -> str:
    """``scratch.frac0.25`` -> ``scratch``."""
    return name.rsplit(".frac", 1)[0]


def label_efficiency(metrics: dict, fractions: dict[str, float]) -> dict:
    """``{"metric", "fractions", "curves": {arm: [{fraction, labelled_patients, achieved_share, value, ci95}]},
    "comparisons"}`` (``achieved_share``: the mean over folds of labelled / available patients).

    ``fractions`` maps every arm that ran to its share of labelled patients.
    """
    metric = metrics["primary_metric"]
    curves: dict[str, list[dict]] = {}
    for name, fraction in fractions.items():
        arm = metrics["arms"][name]
        summary = arm["summary"][metric]
        patients = [f.get("n_labelled_patients") for f in arm["folds"] if f.get("n_labelled_patients") is not None]
        shares = [f["labelled_share"] for f in arm["folds"] if f.get("labelled_share") is not None]
        curves.setdefault(base_arm(name), []).append(
            {"fraction": fraction, "labelled_patients": float(np.mean(patients)) if patients else None,
             "achieved_share": float(np.mean(shares)) if shares else None,
             "value": summary["pooled"], "ci95": summary["ci95"]})
    for points in curves.values():
        points.sort(key=lambda p: p["fraction"])
    comparisons = [{"fraction": fractions[c["a"]], **c} for c in metrics["comparisons"]
                   if c["a"] in fractions and fractions[c["a"]] == fractions.get(c["b"])]
    result = {"metric": metric, "fractions": sorted(set(fractions.values())), "curves": curves,
              "comparisons": comparisons}
    reading = meta_reading(comparisons, result["fractions"])
    if reading:
        result["meta_reading"] = reading
    return result


def meta_reading(comparisons: list[dict], fractions: list[float]) -> str:
    """In words: did the meta-learned arm (``meta``) help at the smallest share of labels, against the supervised
    source model and against scratch? Empty without a meta arm."""
    from .summary import plain_reading

    smallest = min(fractions, default=None)
    found = [c for c in comparisons if c["fraction"] == smallest and base_arm(c["a"]) == "meta"]
    if not found:
        return ""
    helped = [c for c in found if c["ci95"][0] > 0]
    words = " ".join(plain_reading(c) for c in found)
    against = ", ".join(base_arm(c["b"]) for c in helped)
    verdict = (f"At the smallest share of labels ({smallest:g}), meta-learning helped against {against}."
               if helped else f"At the smallest share of labels ({smallest:g}), meta-learning did not measurably "
                              "help: no interval excludes 0.")
    return f"{verdict} {words}"
