"""Checkpoints: training state per epoch (weights-only loadable) and final weights (safetensors)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import WeightsError
from ..plumbing.atomic import atomic_path


def save_training_state(path: Path, state: dict) -> None:
    """Atomically write model/optimizer/scheduler state, epoch and history."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _snapshot(obj):
    """Deep copy of the tensors in a state (so training can go on while it is written)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v) for v in obj)
    return obj


class BackgroundCheckpointWriter:
    """Writes epoch checkpoints on a thread while the next epoch trains.

    Each write is still atomic (temporary file, then rename); a crash during a write
    leaves the previous epoch's checkpoint, from which a resumed run continues exactly.
    """

    def __init__(self):
        self._done = None  # threading.Event of the write in flight
        self._error: BaseException | None = None

    def save(self, path: Path, state: dict) -> None:
        self.wait()
        snapshot = _snapshot(state)
        import threading

        done = threading.Event()

        def write() -> None:
            try:
                save_training_state(path, snapshot)
            except BaseException as exc:  # re-raised in the training thread by wait()
                self._error = exc
            finally:
                done.set()

        self._done = done
        threading.Thread(target=write, name="medtl-checkpoint", daemon=False).start()

    def wait(self) -> None:
        """Block until the write in flight is on disk; re-raise its error.

        Waits on an event, never ``Thread.join``: a Ctrl-C that interrupts ``join`` leaves
        the thread's lock taken (CPython), after which ``join`` returns at once while the
        file is still being written, and the run could stop or hang mid-write.
        """
        if self._done is not None:
            while not self._done.wait(0.1):
                pass
            self._done = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def load_training_state(path: Path) -> dict:
    """An epoch checkpoint, loaded with ``weights_only=True`` (a file that wants to run code is refused)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise WeightsError(f"cannot resume from {path} ({type(exc).__name__}); delete it to restart this fold") from exc


def save_weights(path: Path, model: torch.nn.Module, metadata: dict, prefix: str = "") -> None:
    """Model weights as safetensors with string metadata (backbone, dims, classes, ...).

    ``prefix`` goes before every key (e.g. ``backbone.`` when saving an encoder alone).
    """
    from safetensors.torch import save_file

    state = {prefix + k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in metadata.items()})


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load safetensors weights written by ``save_weights`` into ``model`` (strict)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def read_metadata(path: Path) -> dict:
    """The string metadata of a safetensors file (backbone, dims, classes, ...)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})
