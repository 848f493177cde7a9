"""Which device a model runs on."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' was asked for but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def compute_threads(requested: int | None, workers: int, processes: int = 1) -> int:
    """Threads for the process that runs the model: ``requested``, else its share of the cores left after
    ``workers`` (``processes``: model processes on this machine, e.g. DDP ranks).

    Loader workers run one thread each, so the total stays within the machine's cores
    instead of oversubscribing them (which slows everything down).
    """
    import os

    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, (cores - workers * processes) // processes)
