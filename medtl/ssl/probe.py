"""The linear-probe monitor: do the encoder's frozen features get better at a labelled task while pretraining?

Features of a small labelled set (``ssl.probe_manifest``) are scored out of fold over
patient-grouped folds by a logistic regression (standardised features) or a k-NN
(cosine, k = 10 or fewer), so no image is scored by a classifier that saw its patient.
The score is the ROC AUC (binary) or the macro one-vs-rest AUC. It only monitors: the
source stage never selects an epoch by it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..domain.features import encoder_features


def probe_score(features: np.ndarray, labels: np.ndarray, groups: list[str], kind: str, seed: int = 0) -> float:
    """Out-of-fold AUC of predicting ``labels`` from ``features`` ``(N, d)``; NaN when a fold cannot be formed."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    labels = np.asarray(labels)
    classes = np.unique(labels)
    groups_arr = np.asarray([g or f"case-{i}" for i, g in enumerate(groups)])
    smallest = min(len(set(groups_arr[labels == k])) for k in classes) if len(classes) else 0
    folds = min(5, smallest)
    if len(classes) < 2 or folds < 2:
        return math.nan
    probabilities = np.zeros((len(labels), len(classes)))
    for train, test in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(features, labels,
                                                                                        groups_arr):
        if kind == "knn":
            model = make_pipeline(Normalizer(), KNeighborsClassifier(min(10, len(train)), weights="distance"))
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
        model.fit(features[train], labels[train])
        columns = [int(np.searchsorted(classes, c)) for c in model.classes_]
        probabilities[np.ix_(test, columns)] = model.predict_proba(features[test])
    if len(classes) == 2:
        return float(roc_auc_score(labels == classes[1], probabilities[:, 1]))
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", labels=classes))


class ProbeMonitor:
    """Scores an encoder's features of labelled ``cases`` (objects with ``image``, ``label``, ``patient_key``)."""

    def __init__(self, cases: list, kind: str, every: int, epochs: int):
        self.cases, self.kind, self.every, self.epochs = cases, kind, every, epochs

    def due(self, epoch: int) -> bool:
        """Score after this epoch? Every ``every`` epochs, and always after the last."""
        return (epoch + 1) % self.every == 0 or epoch == self.epochs - 1

    def score(self, encoder, device: torch.device) -> float:
        """The probe AUC of ``encoder``'s pooled features (eval mode: no batch dependence)."""
        features = encoder_features(encoder, self.cases, device)
        return probe_score(features, np.array([c.label for c in self.cases]), [c.patient_key for c in self.cases],
                           self.kind)
