"""The shift check: how well a classifier tells sites apart from a model's features.

A logistic regression (standardised features) predicts each case's site; its
probabilities are out-of-fold over patient-grouped folds, so no patient is scored by a
classifier that saw them. The AUC (one-vs-rest, macro over sites) says how different the
sites look to the model: 0.5 = indistinguishable, 1 = every image betrays its site. The
95% CI resamples patients.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def rank_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half): equals scikit-learn's ``roc_auc_score``,
    without its per-call validation, which dominates a 1000-resample bootstrap."""
    from scipy.stats import rankdata

    truth = np.asarray(truth, dtype=bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if not positives or not negatives:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def site_separability(features: np.ndarray, sites: Sequence[str], patients: Sequence[str], n_boot: int = 1000,
                      seed: int = 0) -> dict:
    """``{"auc", "ci95", "n_sites", "n_cases", "folds"}`` of predicting the site from ``features`` ``(N, d)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..evaluate.stats import patient_bootstrap_ci

    names = sorted(set(sites))
    labels = np.array([names.index(s) for s in sites])
    groups = np.asarray(patients)
    result = {"n_sites": len(names), "n_cases": int(len(labels)), "auc": math.nan, "ci95": [math.nan, math.nan]}
    smallest = min(len(set(groups[labels == k])) for k in range(len(names))) if names else 0
    folds = min(5, smallest)
    if len(names) < 2 or folds < 2:
        result["note"] = "fewer than 2 sites with 2 patients each: the shift check is undefined"
        return result
    probabilities = np.zeros((len(labels), len(names)))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(features, labels, groups):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        classifier.fit(features[train], labels[train])
        seen = list(classifier.classes_)
        probabilities[np.ix_(test, seen)] = classifier.predict_proba(features[test])

    def auc(index: np.ndarray) -> float:
        present = np.unique(labels[index])
        if len(present) < 2:
            return math.nan
        if len(names) == 2:
            return rank_auc(labels[index] == 1, probabilities[index, 1])
        return float(np.mean([rank_auc(labels[index] == k, probabilities[index, k]) for k in present]))

    result["auc"] = auc(np.arange(len(labels)))
    result["ci95"] = list(patient_bootstrap_ci(auc, list(groups), n_boot, seed))
    result["folds"] = folds
    return result
