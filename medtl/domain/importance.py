"""Importance weights for covariate shift: w(x) = p_target(x) / p_source(x) from a domain classifier.

With a probabilistic classifier telling target (1) from source (0) images, Bayes gives
``p_t(x) / p_s(x) = [P(1|x) / P(0|x)] * (n_s / n_t)``. The classifier is a logistic
regression (scikit-learn) on standardised frozen features, and each case's probability
is out-of-fold (5-fold cross-fitting grouped by patient, target patients included), so a
case's weight never comes from a classifier that memorised it, or another image of the same
patient: two images of one patient are near-twins in feature space, and an image-level split
lets the classifier tell the domains apart by recognising the twin, which looks like shift
where there is none. Weights are clipped to [1/clip, clip] (a few extreme weights would
otherwise be the whole training set) and, optionally, scaled to mean 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ImportanceWeights:
    """Per-source-case weights and the facts the report gives about them."""

    weights: np.ndarray
    n_clipped: int  # weights that hit a clip bound
    ess: float  # effective sample size (sum w)^2 / sum w^2: how many cases the weighted loss is worth
    domain_auc: float  # out-of-fold AUC of the domain classifier (0.5: the domains look alike)

    def summary(self) -> dict:
        """JSON facts: n, ESS (and as a share of n), min/median/max, clipped count, domain AUC."""
        w = self.weights
        return {"n": int(len(w)), "ess": round(self.ess, 2), "ess_share": round(self.ess / max(1, len(w)), 4),
                "min": float(w.min()), "median": float(np.median(w)), "max": float(w.max()),
                "n_clipped": self.n_clipped, "domain_auc": self.domain_auc}


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (n for equal weights)."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / np.square(w).sum()) if np.square(w).sum() > 0 else 0.0


def importance_weights(source: np.ndarray, target: np.ndarray, clip: float = 10.0, normalise: bool = True,
                       seed: int = 0, source_groups=None, target_groups=None) -> ImportanceWeights:
    """Density-ratio weights of the ``source`` rows ``(n_s, d)`` towards the ``target`` rows ``(n_t, d)``.

    ``source_groups``/``target_groups``: the patient of each row (rows of one patient stay in one
    cross-fitting fold); a row without a group (``None`` or ``""``) is its own.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    source, target = np.asarray(source, dtype=float), np.asarray(target, dtype=float)
    if source.ndim == 1:
        source, target = source[:, None], target[:, None]
    features = np.concatenate([source, target])
    domain = np.concatenate([np.zeros(len(source), int), np.ones(len(target), int)])
    groups = np.array(_groups(source_groups, len(source), "source") + _groups(target_groups, len(target), "target"))
    folds = min(5, len(set(groups[domain == 0])), len(set(groups[domain == 1])))
    if folds < 2:
        raise ValueError(f"re-weighting needs images of at least 2 source and 2 target patients (got "
                         f"{len(set(groups[domain == 0]))}, {len(set(groups[domain == 1]))})")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    p_target = cross_val_predict(classifier, features, domain, groups=groups, cv=splitter,
                                 method="predict_proba")[:, 1]
    p_target = np.clip(p_target, 1e-6, 1 - 1e-6)
    ratio = p_target[: len(source)] / (1 - p_target[: len(source)]) * (len(source) / len(target))
    clipped = np.clip(ratio, 1.0 / clip, clip)
    n_clipped = int(np.sum((ratio < 1.0 / clip) | (ratio > clip)))
    weights = clipped / clipped.mean() if normalise else clipped
    return ImportanceWeights(weights, n_clipped, effective_sample_size(weights), float(roc_auc_score(domain, p_target)))


def _groups(groups, count: int, domain: str) -> list[str]:
    """One group name per row, distinct between the domains; a row without a group is its own."""
    given = list(groups) if groups is not None else [""] * count
    return [f"{domain}:{g}" if g else f"{domain}:row{i}" for i, g in enumerate(given)]
