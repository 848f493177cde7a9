"""Importance weights: the density ratio of a known covariate shift, clipping, ESS."""

import numpy as np
import pytest

from medtl.domain.importance import effective_sample_size, importance_weights


def test_weights_follow_the_analytic_density_ratio_of_a_gaussian_shift():
    rng = np.random.default_rng(0)
    source, target = rng.normal(0, 1, 2000), rng.normal(1, 1, 2000)
    estimate = importance_weights(source, target, clip=1e6, normalise=False)
    analytic = np.exp(source - 0.5)  # N(1,1) / N(0,1)
    assert np.corrcoef(estimate.weights, analytic)[0, 1] >= 0.95
    assert estimate.n_clipped == 0
    assert 0.6 < estimate.domain_auc < 0.85  # a one-SD shift: separable, far from perfectly


def test_normalised_weights_have_mean_one_and_are_clipped():
    rng = np.random.default_rng(1)
    source, target = rng.normal(0, 1, (300, 3)), rng.normal(0.5, 1, (200, 3))
    estimate = importance_weights(source, target, clip=3.0, normalise=True)
    assert estimate.weights.mean() == pytest.approx(1.0)
    raw = importance_weights(source, target, clip=3.0, normalise=False).weights
    assert raw.min() >= 1 / 3 - 1e-12 and raw.max() <= 3 + 1e-12


def test_disjoint_domains_clip_every_weight_and_say_so():
    rng = np.random.default_rng(2)
    estimate = importance_weights(rng.normal(-10, 1, 100), rng.normal(10, 1, 100), clip=10.0)
    assert estimate.n_clipped == 100 and estimate.domain_auc == 1.0
    assert estimate.summary()["ess_share"] == pytest.approx(1.0)


def test_effective_sample_size():
    assert effective_sample_size(np.ones(50)) == pytest.approx(50)
    assert effective_sample_size(np.array([1.0, 0, 0, 0])) == pytest.approx(1)
    assert effective_sample_size(np.array([3.0, 1.0])) == pytest.approx(16 / 10)


def test_too_few_images_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 source and 2 target"):
        importance_weights(np.zeros(5), np.zeros(1))


def _twins(rng, patients, dims=20):
    """Two near-identical feature vectors per patient (two images of one patient), one distribution."""
    base = rng.normal(size=(patients, dims))
    rows = np.concatenate([base, base + rng.normal(scale=0.01, size=base.shape)])
    groups = [f"p{i}" for i in range(patients)] * 2
    return rows, groups


def test_without_shift_the_domain_classifier_cannot_tell_twins_apart_when_patients_are_grouped():
    """Issue 27.7: no shift, two images per patient: cross-fitting over images lets the classifier recognise a test
    image's twin, so the domains look separable and the weights blame the scanners; grouped by patient (target
    patients too) the domain AUC is at chance, over many draws."""
    grouped, by_image = [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        source, source_groups = _twins(rng, 40, dims=10)
        target, target_groups = _twins(rng, 40, dims=10)
        grouped.append(importance_weights(source, target, seed=seed, source_groups=source_groups,
                                          target_groups=target_groups).domain_auc)
        by_image.append(importance_weights(source, target, seed=seed).domain_auc)  # the old, image-level split
    assert abs(np.mean(grouped) - 0.5) < 0.05
    assert np.mean(by_image) > np.mean(grouped) + 0.05


def test_too_few_patients_are_refused_even_with_many_images():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="2 source and 2 target patients"):
        importance_weights(rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), source_groups=["a"] * 6,
                           target_groups=["b", "c"] * 3)
