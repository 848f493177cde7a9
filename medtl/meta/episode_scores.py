"""Scores of few-shot episodes: accuracy and AUC per episode, means with 95% CIs over episodes."""

from __future__ import annotations

import math

import numpy as np


def episode_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """``{"accuracy", "auc"}`` of one episode's queries (AUC: binary, or macro one-vs-rest for N > 2)."""
    from sklearn.metrics import roc_auc_score

    accuracy = float(np.mean(probabilities.argmax(1) == labels))
    if probabilities.shape[1] == 2:
        auc = float(roc_auc_score(labels, probabilities[:, 1]))
    else:
        auc = float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    return {"accuracy": accuracy, "auc": auc}


def mean_ci(values) -> dict[str, float]:
    """Mean and 95% t-interval over episodes (``{"mean", "low", "high", "n"}``)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n, mean = len(values), float(np.mean(values))
    if n < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "n": n}
    half = float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}
