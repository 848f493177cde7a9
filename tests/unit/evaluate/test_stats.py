"""Patient bootstrap CIs and the paired patient bootstrap."""

import numpy as np
import pytest

from medtl.evaluate.stats import paired_patient_bootstrap, patient_bootstrap_ci


def test_patient_bootstrap_ci_brackets_estimate_and_widens_with_clustering():
    rng = np.random.default_rng(2)
    values = rng.normal(0.7, 0.1, 100)
    mean = lambda idx: float(values[idx].mean())  # noqa: E731
    independent = patient_bootstrap_ci(mean, [str(i) for i in range(100)], n=500)
    clustered = patient_bootstrap_ci(mean, [str(i // 10) for i in range(100)], n=500)
    assert independent[0] < values.mean() < independent[1]
    assert (clustered[1] - clustered[0]) >= 0.5 * (independent[1] - independent[0])


def test_paired_bootstrap_identical_and_clearly_different_arms():
    rng = np.random.default_rng(3)
    a = rng.random(80)
    patients = [str(i // 2) for i in range(80)]
    same = paired_patient_bootstrap(lambda i: a[i].mean(), lambda i: a[i].mean(), patients, n=300)
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0
    better = paired_patient_bootstrap(lambda i: (a[i] + 0.2).mean(), lambda i: a[i].mean(), patients, n=300)
    assert better["mean_diff"] == pytest.approx(0.2) and better["p_value"] < 0.01
    assert better["ci95"][0] > 0


def test_all_metrics_at_once_give_the_intervals_of_one_bootstrap_per_metric():
    import numpy as np

    from medtl.evaluate.stats import patient_bootstrap_ci, patient_bootstrap_cis

    rng = np.random.default_rng(0)
    values = rng.normal(size=30)
    values[3] = np.nan
    patients = [f"p{i // 3}" for i in range(30)]
    statistics = {"mean": lambda idx: float(np.nanmean(values[idx])),
                  "max": lambda idx: float(np.nanmax(values[idx])),
                  "undefined": lambda idx: float("nan")}
    together = patient_bootstrap_cis(lambda idx: {k: f(idx) for k, f in statistics.items()}, patients, 300, 4)
    for name, statistic in statistics.items():
        alone = patient_bootstrap_ci(statistic, patients, 300, 4)
        assert together[name] == alone or (np.isnan(together[name]).all() and np.isnan(alone).all())


def test_a_zero_width_interval_gets_a_word_on_what_it_means():
    """Issue 28.17: an external CI of 1.000-1.000 on 12 patients was shown without a word on its degeneracy."""
    from medtl.evaluate.stats import degenerate_interval_note

    note = degenerate_interval_note((1.0, 1.0), 12)
    assert "zero width" in note and "12 patients" in note and "not certainty" in note
    assert degenerate_interval_note((0.7, 0.9), 12) is None
    assert degenerate_interval_note((float("nan"), float("nan")), 12) is None
    assert degenerate_interval_note((None, None), 12) is None
