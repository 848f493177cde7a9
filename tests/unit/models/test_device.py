"""Device choice: auto falls back to the CPU; asking for CUDA without a GPU is a clear error."""

import pytest
import torch

from medtl.errors import ConfigError
from medtl.models.device import resolve_device


def test_auto_and_explicit_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device(name)


def test_threads_are_divided_between_the_model_and_the_loader_workers(monkeypatch):
    import os

    from medtl.models.device import compute_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert compute_threads(None, 0) == 8 and compute_threads(None, 3) == 5 and compute_threads(None, 20) == 1
    assert compute_threads(2, 3) == 2
