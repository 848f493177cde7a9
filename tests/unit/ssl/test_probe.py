"""The linear-probe monitor: out-of-fold over patients, AUC near 1 on separable features, 0.5 on noise."""

import math

import numpy as np
import pytest

from medtl.ssl.probe import probe_score


@pytest.mark.parametrize("kind", ["logreg", "knn"])
def test_probe_scores_separable_features_high_and_noise_near_chance(kind):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    groups = [f"p{i // 2}" for i in range(80)]
    separable = rng.normal(size=(80, 8)) + labels[:, None] * 3
    assert probe_score(separable, labels, groups, kind) > 0.95
    noise = rng.normal(size=(80, 8))
    assert 0.25 < probe_score(noise, labels, groups, kind) < 0.75


def test_a_patient_is_never_scored_by_a_classifier_that_saw_it():
    # each patient's two images have identical random features and the same label: a leaky split would
    # memorise them and score ~1; out of fold over patients it cannot beat chance
    rng = np.random.default_rng(1)
    per_patient = rng.normal(size=(40, 16))
    features = np.repeat(per_patient, 2, axis=0)
    labels = np.repeat(rng.integers(0, 2, 40), 2)
    groups = [f"p{i // 2}" for i in range(80)]
    assert probe_score(features, labels, groups, "knn") < 0.75


def test_one_class_or_too_few_patients_is_undefined_not_an_error():
    assert math.isnan(probe_score(np.zeros((6, 2)), np.zeros(6), list("abcdef"), "logreg"))
    assert math.isnan(probe_score(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ["a", "b", "a", "b"], "logreg"))
