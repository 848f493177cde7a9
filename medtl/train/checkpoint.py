"""Checkpoints: training state per epoch (weights-only loadable) and final weights (safetensors)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..models.weights import WeightsError


def save_training_state(path: Path, state: dict) -> None:
    """Atomically write model/optimizer/scheduler state, epoch and history."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_training_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise WeightsError(f"cannot resume from {path} ({type(exc).__name__}); delete it to restart this fold") from exc


def save_weights(path: Path, model: torch.nn.Module, metadata: dict) -> None:
    """Model weights as safetensors with string metadata (backbone, dims, classes, ...)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    os.replace(tmp, path)


def load_weights(path: Path, model: torch.nn.Module) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
