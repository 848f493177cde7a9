"""The parity gate's rule: every value within atol + rtol |reference|, nothing non-finite, at least one case."""

import numpy as np
import pytest

from medtl.export.parity import Parity


def test_values_inside_the_elementwise_bound_pass_and_figures_are_kept():
    gate = Parity(atol=1e-4, rtol=1e-3)
    reference = np.array([[10.0, -0.001], [0.0, 3.0]])
    gate.add("a", reference, reference + np.array([[9e-3, 5e-5], [9e-5, 0.0]]))  # 9e-3 <= 1e-4 + 1e-2
    assert gate.passed and gate.n_cases == 2
    assert gate.max_abs == pytest.approx(9e-3) and gate.per_member["a"]["n_cases"] == 2
    summary = gate.summary()
    assert summary["passed"] and summary["members"]["a"]["max_abs"] == pytest.approx(9e-3)


@pytest.mark.parametrize("candidate", [
    np.array([[0.0, 2e-4]]),  # small reference: only atol applies, exceeded
    np.array([[0.0, np.nan]]),  # NaN fails whatever the tolerance
    np.array([[np.inf, 0.0]]),
])
def test_one_value_outside_fails_the_whole_gate(candidate):
    gate = Parity(atol=1e-4, rtol=1e-3)
    gate.add("a", np.zeros((1, 2)), np.zeros((1, 2)))
    gate.add("b", np.zeros((1, 2)), candidate)
    assert not gate.passed


def test_a_gate_that_saw_no_case_does_not_pass():
    assert not Parity(1e-4, 1e-3).passed
