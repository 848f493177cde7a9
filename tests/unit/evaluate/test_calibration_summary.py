"""The calibration block of metrics.json: coverage and triage per site, and the warning when a site's coverage
falls below the target beyond its interval (a new site breaks exchangeability)."""

import pytest

from medtl.evaluate.calibration_summary import calibration_summary


def rows(site, n, covered, singleton=True):
    out = []
    for i in range(n):
        hit = i < covered
        out.append({"case_id": f"{site}{i}", "patient_key": f"p{site}{i}", "label_index": 1, "prob_0": 0.3,
                    "prob_1": 0.7, "prediction_set": ("1" if hit else "0") if singleton else ("0|1" if hit else "0"),
                    "set_size": 1 if singleton or not hit else 2})
    return out


def test_a_site_covered_below_the_target_beyond_its_interval_is_warned_and_triage_is_per_site():
    data = rows("a", 60, 57) + rows("b", 60, 36)
    sites = {r["case_id"]: r["case_id"][0] for r in data}
    block = calibration_summary(data, ["0", "1"], 0.1, sites)
    coverage = block["summary"]["coverage"]
    assert coverage["per_site"]["a"]["rate"] == pytest.approx(0.95) and coverage["per_site"]["b"]["rate"] == 0.6
    assert len(block["warnings"]) >= 1 and any("site b" in w for w in block["warnings"])
    assert not any("site a" in w for w in block["warnings"])
    triage = block["summary"]["triage"]["per_site"]
    assert triage["b"]["error_among_accepted"]["rate"] == pytest.approx(0.4) and triage["a"]["referral_rate"] == 0


def test_equal_mass_ece_bins_hold_equal_numbers_of_cases():
    """Issue 29 asks for ECE over equal-mass bins: scores crowded near 0.9 leave most equal-width bins empty."""
    import numpy as np

    from medtl.tasks.metrics import equal_mass_calibration_error

    rng = np.random.default_rng(0)
    p = np.clip(rng.normal(0.9, 0.03, 1000), 0, 1)
    labels = (rng.random(1000) < p).astype(int)  # calibrated by construction
    probs = np.stack([1 - p, p], 1)
    assert equal_mass_calibration_error(labels, probs) < 0.03
    shifted = np.stack([1 - p * 0.8, p * 0.8], 1)  # every probability 20% too low
    assert equal_mass_calibration_error(labels, shifted) == pytest.approx(np.mean(labels) - np.mean(p * 0.8), abs=0.02)


def test_each_site_has_its_own_before_and_after():
    data = rows("a", 20, 18) + rows("b", 20, 12)
    sites = {r["case_id"]: r["case_id"][0] for r in data}
    per_site = calibration_summary(data, ["0", "1"], 0.1, sites)["summary"]["per_site"]
    assert set(per_site) == {"a", "b"} and per_site["a"]["n_cases"] == 20
    assert set(per_site["b"]["after"]) >= {"ece_equal_mass", "brier", "nll"}
