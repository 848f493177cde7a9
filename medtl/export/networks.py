"""Writing a network as ONNX or a ``torch.export`` program, and loading either back as a callable module.

The loaded networks behave like a medtl model for inference (``dense_output``,
``__call__`` on a float tensor returning logits), so the same sliding-window and
ensemble code runs on them as on the PyTorch models.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

OPSET = 18  # pinned: the exported graphs use this ONNX opset
FORMATS = {"onnx": ".onnx", "torch-export": ".pt2"}


@contextmanager
def _without_torch_deprecation_notices():
    """torch.export / torch.onnx warn about their own internals (pytree specs and the like): nothing a user can
    act on, and printed as WARNING lines they hid the export's real messages."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def write_network(model: nn.Module, path: Path, fmt: str, example: torch.Tensor) -> None:
    """Export ``model`` (eval mode) with a dynamic batch axis; ``example`` fixes the other axes."""
    model.eval()
    with _without_torch_deprecation_notices():
        _write_network(model, path, fmt, example)


def _write_network(model: nn.Module, path: Path, fmt: str, example: torch.Tensor) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    if fmt == "onnx":
        from .extra import require_onnx

        require_onnx()
        # torch notes every torchvision op it cannot find and onnxscript every optimisation pass: not ours to report
        loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:  # one self-contained file (weights inside): what model.json hashes is the whole network
            torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["logits"],
                              opset_version=OPSET, dynamo=True, dynamic_shapes={"x": {0: batch}}, verbose=False,
                              external_data=False)
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
        return
    program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, str(path))


class OnnxNetwork(nn.Module):
    """An ONNX file run by onnxruntime (CUDA provider when asked for and present, else CPU)."""

    def __init__(self, path: Path, dense_output: bool, device: torch.device | None = None, threads: int | None = None):
        super().__init__()
        from .extra import require_onnx

        require_onnx()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        if device is not None and device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.providers = self.session.get_providers()
        self.dense_output = dense_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(["logits"], {"image": x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out)


class ProgramNetwork(nn.Module):
    """A saved ``torch.export`` program.

    ``torch.export.load`` unpickles the program's weights (``torch.load`` with
    ``weights_only=False`` inside torch), so medtl loads only programs it has just written
    itself (the export's parity gate); ``medtl predict`` runs ONNX exports only.
    """

    def __init__(self, path: Path, dense_output: bool):
        super().__init__()
        with _without_torch_deprecation_notices():
            self.program = torch.export.load(str(path)).module()
        self.dense_output = dense_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _without_torch_deprecation_notices():
            return self.program(x)


def load_network(path: Path, dense_output: bool, device: torch.device | None = None,
                 threads: int | None = None, written_now: bool = False) -> nn.Module:
    """The exported network at ``path`` (by its suffix) as an inference module.

    A ``torch.export`` program is loaded only when ``written_now`` (this process wrote it):
    its loader unpickles, and a file from elsewhere could run code.
    """
    if path.suffix == ".onnx":
        return OnnxNetwork(path, dense_output, device, threads)
    if not written_now:
        from ..errors import InputError

        raise InputError(f"{path.name} is a torch.export program; loading one unpickles its weights (it could run "
                         "code), so medtl predict runs ONNX exports only: export with --format onnx, or load the "
                         ".pt2 in your own runner from a source you trust")
    return ProgramNetwork(path, dense_output).to(device or torch.device("cpu"))
