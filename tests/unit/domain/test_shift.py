"""The shift check: site AUC from features, out-of-fold over patients, with a patient-bootstrap CI."""

import numpy as np
import pytest

from medtl.domain.shift import site_separability


def _patients(n: int, per_patient: int = 2) -> list[str]:
    return [f"p{i // per_patient}" for i in range(n)]


def test_sites_that_differ_are_told_apart_and_alike_sites_are_not():
    rng = np.random.default_rng(0)
    sites = ["a"] * 60 + ["b"] * 60 + ["c"] * 60
    patients = [f"{s}{p}" for s, p in zip(sites, _patients(180))]
    apart = rng.normal(0, 1, (180, 8)) + np.repeat(np.eye(3, 8) * 4, 60, axis=0)
    result = site_separability(apart, sites, patients, n_boot=200)
    assert result["auc"] > 0.95 and result["n_sites"] == 3 and result["ci95"][0] > 0.9
    alike = site_separability(rng.normal(0, 1, (180, 8)), sites, patients, n_boot=200)
    assert 0.3 < alike["auc"] < 0.7


def test_a_patient_is_never_scored_by_a_classifier_that_saw_them():
    # every patient has a unique feature vector (two identical images) and sites are random: a classifier that saw
    # the patient's twin image would recall its site; out-of-fold over patients it can only guess
    rng = np.random.default_rng(1)
    n_patients = 60
    per_patient = rng.normal(0, 1, (n_patients, 20))
    features = np.repeat(per_patient, 2, axis=0)
    sites = list(np.repeat(rng.choice(["a", "b"], n_patients), 2))
    patients = [f"p{i}" for i in np.repeat(np.arange(n_patients), 2)]
    assert site_separability(features, sites, patients, n_boot=100)["auc"] < 0.75


def test_one_site_is_undefined_not_an_error():
    result = site_separability(np.zeros((4, 2)), ["a"] * 4, ["p1", "p1", "p2", "p2"], n_boot=100)
    assert np.isnan(result["auc"]) and "undefined" in result["note"]


def test_rank_auc_equals_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    from medtl.domain.shift import rank_auc

    rng = np.random.default_rng(3)
    for _ in range(20):
        truth = rng.random(40) < 0.4
        score = np.round(rng.random(40), 1)  # many ties
        assert rank_auc(truth, score) == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    assert np.isnan(rank_auc(np.ones(5, bool), np.arange(5)))
