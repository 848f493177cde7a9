"""What calibration and conformal sets did, from the out-of-fold rows: before/after figures with patient-bootstrap
CIs, coverage per class and per site with Wilson intervals, set sizes, and the "refer if not a singleton" triage."""

from __future__ import annotations

import numpy as np

from ..calibration.temperature import negative_log_likelihood
from ..tasks.metrics import brier_score, equal_mass_calibration_error, expected_calibration_error
from .stats import patient_bootstrap_cis

BOOTSTRAP = 1000
ABSTENTION_RATES = tuple(round(0.05 * k, 2) for k in range(11))  # 0, 5, ..., 50% of the cases referred


def wilson(successes: int, total: int) -> list[float | None]:
    """95% Wilson interval of a proportion (``[None, None]`` for no cases)."""
    if total == 0:
        return [None, None]
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, total, alpha=0.05, method="wilson")
    return [float(low), float(high)]


def _rate(hits: list[bool]) -> dict:
    return {"n": len(hits), "rate": float(np.mean(hits)) if hits else None, "ci95": wilson(int(sum(hits)), len(hits))}


def _scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    out = {"ece": expected_calibration_error(labels, probs), "ece_equal_mass": equal_mass_calibration_error(labels, probs),
           "brier": brier_score(labels, probs), "nll": negative_log_likelihood(labels, probs)}
    if probs.shape[1] == 2:  # pooled over folds: each fold's own temperature can move cases across folds
        from sklearn.metrics import roc_auc_score

        out["pooled_auc"] = float(roc_auc_score(labels, probs[:, 1])) if len(set(labels)) == 2 else float("nan")
    return out


def risk_coverage(labels: np.ndarray, probs: np.ndarray) -> list[dict]:
    """Accuracy among the cases kept when the least confident (lowest top probability) are referred."""
    order = np.argsort(-probs.max(1), kind="stable")
    correct = (probs.argmax(1) == labels)[order]
    out = []
    for rate in ABSTENTION_RATES:
        kept = max(1, int(round(len(labels) * (1 - rate))))
        out.append({"abstention": rate, "kept": kept, "accuracy": float(correct[:kept].mean())})
    return out


def _triage(hits: list[bool], sizes: list[int], cases: list[int]) -> dict:
    """"Refer every case whose set is not a single class" on ``cases``: referral rate, error among the accepted."""
    accepted = [i for i in cases if sizes[i] == 1]
    return {"rule": "refer every case whose prediction set is not a single class", "cases": len(cases),
            "referral_rate": 1 - len(accepted) / len(cases) if cases else None, "accepted": len(accepted),
            "error_among_accepted": _rate([not hits[i] for i in accepted])}


def calibration_summary(rows: list[dict], class_names, alpha: float | None, sites: dict[str, str],
                        seed: int = 0) -> dict:
    """The arm's ``metrics.json["arms"][arm]["calibration"]`` block and the warnings it implies."""
    labels = np.array([r["label_index"] for r in rows], dtype=int)
    after = np.array([[r[f"prob_{n}"] for n in class_names] for r in rows], dtype=np.float64)
    before = np.array([[r.get(f"raw_prob_{n}", r[f"prob_{n}"]) for n in class_names] for r in rows], dtype=np.float64)
    patients = [r["patient_key"] for r in rows]
    out: dict = {"n_cases": len(rows)}
    for name, probs in (("before", before), ("after", after)):
        cis = patient_bootstrap_cis(lambda idx, p=probs: _scores(labels[idx], p[idx]), patients, BOOTSTRAP, seed)
        out[name] = {metric: {"value": value, "ci95": list(cis[metric])}
                     for metric, value in _scores(labels, probs).items()}
    out["risk_coverage"] = risk_coverage(labels, after)
    case_sites = [sites.get(r["case_id"], "") for r in rows]
    if any(case_sites):  # each site's before and after, patients resampled within the site
        out["per_site"] = {}
        for site in sorted(set(case_sites)):
            idx = np.array([i for i, c in enumerate(case_sites) if c == site])
            out["per_site"][site] = {"n_cases": int(len(idx))}
            for name, probs in (("before", before), ("after", after)):
                cis = patient_bootstrap_cis(lambda sub, p=probs[idx], y=labels[idx]: _scores(y[sub], p[sub]),
                                            [patients[i] for i in idx], BOOTSTRAP, seed)
                out["per_site"][site][name] = {metric: {"value": value, "ci95": list(cis[metric])}
                                               for metric, value in _scores(labels[idx], probs[idx]).items()}
    warnings = []
    if alpha is not None and rows and "prediction_set" in rows[0]:
        members = [set(str(r["prediction_set"]).split("|")) if r["prediction_set"] != "" else set() for r in rows]
        hits = [class_names[y] in m for y, m in zip(labels, members)]
        sizes = [len(m) for m in members]
        out["coverage"] = {"target": 1 - alpha, **_rate(hits),
                           "per_class": {n: _rate([h for h, y in zip(hits, labels) if y == k])
                                         for k, n in enumerate(class_names)}}
        if any(case_sites):
            out["coverage"]["per_site"] = {s: _rate([h for h, c in zip(hits, case_sites) if c == s])
                                           for s in sorted(set(case_sites))}
        accepted = [i for i, size in enumerate(sizes) if size == 1]
        out["sets"] = {"mean_size": float(np.mean(sizes)), "singleton_share": len(accepted) / len(rows),
                       "empty_share": sum(s == 0 for s in sizes) / len(rows)}
        out["triage"] = _triage(hits, sizes, list(range(len(rows))))
        if any(case_sites):
            out["triage"]["per_site"] = {s: _triage(hits, sizes, [i for i, c in enumerate(case_sites) if c == s])
                                         for s in sorted(set(case_sites))}
        groups = [("overall", out["coverage"])] + [(f"class {n}", v) for n, v in out["coverage"]["per_class"].items()]
        groups += [(f"site {s}", v) for s, v in out["coverage"].get("per_site", {}).items()]
        for what, figures in groups:
            high = figures["ci95"][1]
            if high is not None and high < 1 - alpha:
                warnings.append(f"conformal coverage {what}: {figures['rate']:.3f} (95% CI up to {high:.3f}) is below "
                                f"the target {1 - alpha:.2f} beyond its uncertainty: the calibration cases were not "
                                "exchangeable with the scored ones (another site or period?)")
    return {"summary": out, "warnings": warnings}
