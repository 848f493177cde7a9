"""How many loader processes `medtl predict` starts by default: the model is the bottleneck on the CPU."""

import pytest
import torch

from medtl.io import parallel
from medtl.predict.engine import default_workers


@pytest.mark.parametrize("cores, cpu, gpu", [(1, 0, 0), (2, 0, 1), (3, 0, 2), (4, 1, 3), (8, 2, 4), (16, 4, 4),
                                             (64, 4, 4)])
def test_loaders_take_a_quarter_of_the_cores_on_the_cpu_and_feed_a_gpu(monkeypatch, cores, cpu, gpu):
    monkeypatch.setattr(parallel, "default_workers", lambda: cores)
    assert default_workers(torch.device("cpu")) == default_workers() == cpu
    assert default_workers(torch.device("cuda")) == gpu
