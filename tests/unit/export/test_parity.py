"""The parity gate's rule: every value within atol + rtol |reference| (or, where PyTorch's own float32 output is
that far from the exact one, as close to the exact output), nothing non-finite, at least one case."""

import numpy as np
import pytest
import torch

from medtl.config import DataConfig
from medtl.export.parity import Parity, compare_outputs


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


def test_a_value_outside_the_tolerance_passes_when_pytorch_errs_as_much_the_other_way():
    # an ill-conditioned case: PyTorch's float32 output is 7e-5 above the exact one, the export 7e-5 below
    exact = np.array([[-0.0117, -0.5741]])
    reference, exported = exact + np.array([[7e-5, 0.0]]), exact - np.array([[7e-5, 0.0]])
    plain = Parity(atol=1e-4, rtol=1e-3)
    plain.add("a", reference, exported)
    assert not plain.passed  # 1.4e-4 apart: outside atol + rtol |reference|
    judged = Parity(atol=1e-4, rtol=1e-3)
    judged.add("a", reference, exported, exact)
    assert judged.passed and judged.within_float32_rounding == 1
    assert judged.max_abs == pytest.approx(1.4e-4)  # the figures stay those against PyTorch
    summary = judged.summary()
    assert summary["pytorch_float32_error"] == pytest.approx(7e-5) and "float64" in summary["note"]


@pytest.mark.parametrize("own_error, offset", [
    (0.0, 2e-4),  # PyTorch is exact: any difference beyond the tolerance is the export's
    (7e-5, 5e-4),  # ill-conditioned, but the export is off by far more than the rounding allows
])
def test_an_export_further_from_the_exact_output_than_rounding_allows_still_fails(own_error, offset):
    exact = np.array([[0.01, -0.02]])
    gate = Parity(atol=1e-4, rtol=1e-3)
    gate.add("a", exact + own_error, exact + offset, exact)
    assert not gate.passed and gate.within_float32_rounding == 0


class _Cancelling(torch.nn.Module):
    """A badly conditioned network: two large, nearly equal products cancel, leaving float32 rounding on top."""

    def __init__(self, mirror: bool = False, offset: float = 0.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([[3e4, -3e4, 1.0], [1.0, 0.5, -1.0]]))
        self.mirror, self.offset = mirror, offset

    def forward(self, images):
        flat = images.flatten(1)[:, :3]
        out = flat @ self.weight.T
        if self.mirror:  # an export that errs by as much the other way around the exact output
            exact = (flat.double() @ self.weight.double().T).float()
            out = 2 * exact - out
        return out + self.offset


def _cancelling_images():
    rng = np.random.default_rng(0)
    images = []
    for _ in range(16):
        first = np.float32(rng.uniform(1, 2))
        images.append(np.array([[[first, np.nextafter(first, np.float32(3)) + np.float32(rng.uniform(0, 1e-6))],
                                 [np.float32(0.5), np.float32(0)]]], dtype=np.float32))
    return images


def test_the_gate_takes_the_float64_network_as_the_exact_output_only_where_needed():
    data = DataConfig(dims=2, image_size=[2, 2])
    images = _cancelling_images()
    model = _Cancelling()
    with torch.no_grad():
        batch = torch.from_numpy(np.stack(images))
        own_error = (model(batch).double() - model.double()(batch.double())).abs().max()
        model.float()
    assert own_error > 1e-4  # the premise: PyTorch's own float32 error is beyond the tolerance
    as_accurate = Parity(atol=1e-4, rtol=1e-3)
    compare_outputs("a", model, _Cancelling(mirror=True), images, data, as_accurate)
    assert as_accurate.passed and as_accurate.within_float32_rounding > 0
    assert as_accurate.max_abs > 1e-4
    wrong = Parity(atol=1e-4, rtol=1e-3)
    compare_outputs("a", model, _Cancelling(offset=0.05), images, data, wrong)
    assert not wrong.passed
    same = Parity(atol=1e-4, rtol=1e-3)
    compare_outputs("a", model, _Cancelling(), images, data, same)
    assert same.passed and same.within_float32_rounding == 0 and same.max_abs == 0


class _Dense3d(torch.nn.Module):
    """A 3D segmentation network for patch mode: per-voxel logits of two classes, optionally shifted."""

    dense_output = True

    def __init__(self, offset: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)
        self.offset = offset

    def forward(self, images):
        return self.conv(images) + self.offset


class _Pooled3d(_Dense3d):
    """A 3D classifier whose windows' logits patch mode aggregates."""

    dense_output = False

    def forward(self, images):
        return self.conv(images).mean(dim=(2, 3, 4)) + self.offset


@pytest.mark.parametrize("network", [_Dense3d, _Pooled3d])
def test_the_float64_check_runs_through_patch_mode_inference(network):
    """Sliding windows (segmentation) and aggregated windows (classification) of 3D volumes larger than a patch:
    the exact output is computed there too, and a real offset still fails."""
    data = DataConfig(dims=3, image_size=[8, 8, 8], mode="patch", patch_size=[8, 8, 8])
    volumes = [np.random.default_rng(i).normal(size=(1, 12, 10, 9)).astype(np.float32) for i in range(2)]
    gate = Parity(atol=1e-4, rtol=1e-3)
    compare_outputs("a", network(), network(offset=0.01), volumes, data, gate)
    assert not gate.passed and gate.exact_unavailable == "" and gate.within_float32_rounding == 0
    assert gate.n_cases == 2 and gate.max_abs == pytest.approx(0.01, rel=1e-3)
