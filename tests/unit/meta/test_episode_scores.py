"""Few-shot scores: accuracy and AUC per episode (binary and macro one-vs-rest), t-intervals over episodes."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from medtl.meta.episode_scores import episode_scores, mean_ci


def test_binary_and_multiclass_episode_scores_match_scikit_learn():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    scores = episode_scores(labels, probs)
    assert scores["accuracy"] == 0.5 and scores["auc"] == pytest.approx(roc_auc_score(labels, probs[:, 1]))
    labels3 = np.array([0, 1, 2, 0, 1, 2])
    probs3 = np.random.default_rng(0).dirichlet(np.ones(3), size=6)
    assert episode_scores(labels3, probs3)["auc"] == pytest.approx(
        roc_auc_score(labels3, probs3, multi_class="ovr", average="macro"))


def test_the_interval_over_episodes_is_the_t_interval_and_one_episode_has_none():
    values = [0.5, 0.7, 0.6, 0.9]
    got = mean_ci(values)
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert got["mean"] == pytest.approx(0.675) and got["low"] == pytest.approx(low) and got["high"] == pytest.approx(high)
    assert math.isnan(mean_ci([0.5])["low"]) and mean_ci([0.5])["n"] == 1
