"""Temperature scaling and conformal sets against what their definitions promise (issue 29)."""

import math

import numpy as np
import pytest

from medtl.calibration import apply_temperature, conformal_quantile, fit_calibrator, fit_conformal, fit_temperature
from medtl.calibration.temperature import negative_log_likelihood


def softmax(z):
    z = z - z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_temperature_scaling_recovers_a_known_temperature(true_t):
    """Labels distributed as softmax(z / T): the fit finds T (each case expanded into its label frequencies, so the
    sample is the distribution itself and the minimiser is exactly T)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (300, 3))
    counts = np.rint(softmax(logits / true_t) * 2000).astype(int)
    labels = np.concatenate([np.repeat(k, counts[i, k]) for i in range(300) for k in range(3)])
    probs = np.concatenate([np.repeat(softmax(logits)[i:i + 1], counts[i].sum(), 0) for i in range(300)])
    assert fit_temperature(labels, probs) == pytest.approx(true_t, abs=1e-3)


def test_temperature_keeps_the_predicted_class_and_the_binary_ranking_and_lowers_the_nll():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (500, 2))
    labels = (rng.random(500) < softmax(logits / 3)[:, 1]).astype(int)  # the model is 3x overconfident
    probs = softmax(logits)
    t = fit_temperature(labels, probs)
    calibrated = apply_temperature(probs, t)
    assert t > 1.5
    assert (calibrated.argmax(1) == probs.argmax(1)).all()
    assert roc_auc_score(labels, calibrated[:, 1]) == pytest.approx(roc_auc_score(labels, probs[:, 1]), abs=1e-12)
    assert negative_log_likelihood(labels, calibrated) < negative_log_likelihood(labels, probs)


@pytest.mark.parametrize("n, alpha", [(10, 0.1), (19, 0.05), (100, 0.1), (57, 0.2), (5, 0.1)])
def test_the_conformal_threshold_is_the_finite_sample_quantile(n, alpha):
    scores = np.random.default_rng(n).random(n)
    rank = math.ceil(round((n + 1) * (1 - alpha), 9))  # (19 + 1) * 0.95 is 19: the 19th of 19, not infinite
    expected = np.quantile(scores, rank / n, method="inverted_cdf") if rank <= n else math.inf
    assert (n, alpha) != (19, 0.05) or math.isfinite(expected)
    assert conformal_quantile(scores, alpha) == expected


def _draw(rng, n, prior, separation):
    """Cases of len(prior) classes: the true class's logit is raised by ``separation``."""
    labels = rng.choice(len(prior), n, p=prior)
    logits = rng.normal(0, 1, (n, len(prior)))
    logits[np.arange(n), labels] += separation
    return labels, softmax(logits)


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_class_conditional_coverage_holds_for_every_class_over_200_seeds(score):
    alpha, covered, bounds = 0.1, {0: [], 1: [], 2: []}, {}
    for seed in range(200):
        rng = np.random.default_rng(seed)
        cal_labels, cal_probs = _draw(rng, 300, [0.6, 0.3, 0.1], 1.5)
        test_labels, test_probs = _draw(rng, 300, [0.6, 0.3, 0.1], 1.5)
        sets = fit_conformal(cal_labels, cal_probs, alpha, score, "class").sets(test_probs)
        for k in covered:
            mine = test_labels == k
            covered[k].append(np.mean([k in sets[i] for i in np.flatnonzero(mine)]))
            bounds[k] = np.sum(cal_labels == k)
    for k, values in covered.items():
        mean = float(np.mean(values))
        # the finite-sample guarantee: 1 - alpha <= coverage <= 1 - alpha + 1/(n_k + 1) (on average over seeds;
        # 3 standard errors of slack for the Monte Carlo mean)
        slack = 3 * np.std(values) / np.sqrt(len(values))
        assert 1 - alpha - slack <= mean <= 1 - alpha + 1 / (bounds[k] + 1) + slack, (k, mean)


def test_marginal_sets_fail_the_minority_class_where_class_conditional_sets_hold_it():
    """An imbalanced set where the minority class is hard: the marginal threshold is set by the majority."""
    alpha, marginal, mondrian = 0.1, [], []
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        def draw(n):
            labels = (rng.random(n) < 0.08).astype(int)
            logits = rng.normal(0, 1, (n, 2))
            logits[np.arange(n), labels] += np.where(labels == 1, 0.3, 3.0)  # the minority is barely separated
            return labels, softmax(logits)
        cal, test = draw(800), draw(800)
        minority = np.flatnonzero(test[0] == 1)
        for by, out in (("none", marginal), ("class", mondrian)):
            sets = fit_conformal(*cal, alpha, "lac", by).sets(test[1])
            out.append(np.mean([1 in sets[i] for i in minority]))
    assert np.mean(marginal) < 1 - alpha - 0.1  # the minority is covered far below the target
    assert np.mean(mondrian) >= 1 - alpha - 0.02


def test_too_few_calibration_cases_put_the_class_in_every_set_and_say_so():
    labels = np.array([0] * 50 + [1] * 3)
    probs = softmax(np.random.default_rng(0).normal(0, 1, (53, 2)))
    calibrator = fit_calibrator(labels, probs, temperature=True, alpha=0.1)
    assert calibrator.conformal.thresholds["1"] == math.inf
    assert all(1 in s for s in calibrator.sets(calibrator.probabilities(probs)))
    assert "too few calibration cases for class 1 (3; at least 9" in calibrator.conformal.notes[0]
    again = type(calibrator).from_dict(calibrator.to_dict())
    assert again.temperature == calibrator.temperature and again.conformal.thresholds == calibrator.conformal.thresholds


def test_lac_sets_equal_mapies_marginal_and_per_class():
    """MAPIE (a maintained conformal library) as the reference: the same LAC sets, marginal and class by class."""
    mapie = pytest.importorskip("mapie.classification")
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Given(ClassifierMixin, BaseEstimator):  # a "model" whose probabilities are its input
        def fit(self, x, y):
            self.classes_ = np.arange(3)
            return self

        def predict_proba(self, x):
            return np.asarray(x)

        def predict(self, x):
            return np.asarray(x).argmax(1)

    rng = np.random.default_rng(0)
    cal_labels, cal_probs = _draw(rng, 500, [0.6, 0.3, 0.1], 1.5)
    _, test_probs = _draw(rng, 300, [0.6, 0.3, 0.1], 1.5)

    def reference(probs, labels):
        model = mapie.SplitConformalClassifier(estimator=Given().fit(probs, labels), confidence_level=0.9,
                                               conformity_score="lac", prefit=True)
        model.conformalize(probs, labels)
        return model.predict_set(test_probs)[1][:, :, 0]

    def ours(by):
        table = np.zeros((len(test_probs), 3), bool)
        for i, members in enumerate(fit_conformal(cal_labels, cal_probs, 0.1, "lac", by).sets(test_probs)):
            table[i, members] = True
        return table

    assert (ours("none") == reference(cal_probs, cal_labels)).all()
    per_class = np.stack([reference(cal_probs[cal_labels == k], cal_labels[cal_labels == k])[:, k]
                          for k in range(3)], 1)
    assert (ours("class") == per_class).all()


def test_the_scores_are_what_their_names_say():
    from medtl.calibration.conformal import class_scores
    from medtl.calibration.fitted import Calibrator

    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    assert np.allclose(class_scores(probs, "lac"), 1 - probs)
    # aps: the probability of the classes ranked at or above the class (ties keep their order)
    assert np.allclose(class_scores(probs, "aps"), [[0.6, 0.9, 1.0], [0.8, 1.0, 0.6]])
    assert np.allclose(Calibrator().probabilities(probs), probs) and Calibrator().sets(probs) is None
