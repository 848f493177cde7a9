"""Weight adaptation, explicit and reported.

* Input channels: ``sum`` (a gray image gives exactly what the RGB network gives on
  the image repeated three times), ``mean``, ``first``, ``random``; N channels tile
  the RGB kernels scaled by 3/N; 3 channels load as is.
* 2D->3D inflation: ``mean`` (I3D: repeat along depth, divide by depth) or
  ``center`` (kernel in the central depth slice only, so a depth-constant volume
  gives exactly the 2D network's output).
* ``transfer_state`` accounts for every tensor: loaded, adapted, newly initialised,
  dropped or unexpected. An unexplained missing tensor is an error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import MedtlError, WeightsError
from ..plumbing.atomic import write_json

INPUT_ADAPT = ("sum", "mean", "first", "random")
INFLATE = ("mean", "center")


@dataclass
class AdaptationReport:
    """What happened to every tensor when pretrained weights were put under a model."""

    source: str
    file: str | None = None
    sha256: str | None = None
    licence: str | None = None  # published weights: the terms the loaded file carries at its revision
    revision: str | None = None
    loaded: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)
    new: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} loaded", f"{len(self.adapted)} adapted", f"{len(self.new)} new"]
        if self.dropped:
            parts.append(f"{len(self.dropped)} dropped")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected")
        return f"weights from {self.source}: " + ", ".join(parts)

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def adapt_input_channels(weight: torch.Tensor, in_channels: int, method: str = "sum") -> tuple[torch.Tensor, str]:
    """Adapt a first-conv kernel ``(out, c_src, ...)`` to ``in_channels`` input channels."""
    if method not in INPUT_ADAPT:
        raise MedtlError(f"unknown input adaptation '{method}'; choose from {', '.join(INPUT_ADAPT)}")
    source = weight.shape[1]
    if source == in_channels:
        return weight.clone(), "as is"
    if method == "random":
        fresh = torch.empty((weight.shape[0], in_channels, *weight.shape[2:]), dtype=weight.dtype)
        torch.nn.init.kaiming_normal_(fresh, mode="fan_out", nonlinearity="relu")
        return fresh, f"random init for {in_channels} channels (pretrained first layer discarded)"
    if in_channels == 1:
        if method == "sum":
            return weight.sum(dim=1, keepdim=True), f"sum of {source} input channels"
        if method == "mean":
            return weight.mean(dim=1, keepdim=True), f"mean of {source} input channels"
        return weight[:, :1].clone(), "first input channel"
    index = torch.arange(in_channels) % source
    return weight[:, index] * (source / in_channels), f"{source} channels tiled to {in_channels}, scaled {source}/{in_channels}"


def inflate_kernel(weight: torch.Tensor, depth: int, method: str = "mean") -> torch.Tensor:
    """2D kernel ``(out, in, h, w)`` -> 3D ``(out, in, depth, h, w)``."""
    if method not in INFLATE:
        raise MedtlError(f"unknown inflation '{method}'; choose from {', '.join(INFLATE)}")
    if method == "mean":
        return weight.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth
    inflated = torch.zeros((*weight.shape[:2], depth, *weight.shape[2:]), dtype=weight.dtype)
    inflated[:, :, depth // 2] = weight
    return inflated


# BatchNorm counters are absent from older checkpoints; starting them at 0 changes nothing.
_HARMLESS_MISSING = ("num_batches_tracked",)


def transfer_state(module: torch.nn.Module, source: dict, report: AdaptationReport, *, first_conv: str | None,
                   in_channels: int, input_adapt: str, inflate: str, drop_prefixes: tuple[str, ...] = (),
                   prefix: str = "", allow_new: dict[str, str] | None = None, strict_unexpected: bool = False) -> None:
    """Load ``source`` into ``module``, adapting what must be adapted and recording everything.

    ``allow_new`` maps target key prefixes to the reason they may be freshly initialised.
    A tensor the model needs and the file lacks, a tensor of the wrong shape, a non-finite
    value, or (``strict_unexpected``: published files, whose layout is known) a tensor the
    model does not have is a ``WeightsError`` naming the keys; nothing is loaded then.
    A module may adapt its own tensors (``adapt_pretrained(key, tensor, wanted_shape)``,
    e.g. a ViT's 2D position table under a 3D model).
    """
    target = module.state_dict()
    allow_new = allow_new or {}
    adapt_own = getattr(module, "adapt_pretrained", None)
    result: dict[str, torch.Tensor] = {}
    missing = []
    where = report.file or report.source
    for key, wanted in target.items():
        name = prefix + key
        if key not in source:
            reason = next((why for p, why in allow_new.items() if key.startswith(p)), None)
            if key.endswith(_HARMLESS_MISSING):
                result[key] = wanted
                report.new[name] = "BatchNorm step counter absent from the checkpoint; starts at 0"
            elif reason:
                report.new[name] = reason
            else:
                missing.append(name)
            continue
        tensor = source[key].to(wanted.dtype)
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise WeightsError(f"checkpoint {where}: tensor '{name}' holds NaN or infinite values; the file is "
                               "damaged or the training that wrote it diverged; nothing was loaded")
        notes = []
        if key == first_conv and tensor.shape[1] != wanted.shape[1]:
            tensor, note = adapt_input_channels(tensor, in_channels, input_adapt)
            notes.append(note)
        if tensor.dim() == wanted.dim() - 1 and tensor.dim() >= 4:
            tensor = inflate_kernel(tensor, wanted.shape[2], inflate)
            notes.append(f"inflated 2D->3D ({inflate}, depth {wanted.shape[2]})")
        own = adapt_own(key, tensor, wanted.shape) if adapt_own is not None else None
        if own is not None:
            tensor, note = own
            notes.append(note)
        if tensor.shape != wanted.shape:
            raise WeightsError(f"checkpoint {where}: tensor '{name}' has shape {tuple(source[key].shape)} but the "
                               f"model needs {tuple(wanted.shape)}; the checkpoint was made for a different "
                               "architecture (check model.backbone and the checkpoint's metadata); nothing was loaded")
        result[key] = tensor
        if notes:
            report.adapted[name] = "; ".join(notes)
        else:
            report.loaded.append(name)
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise WeightsError(f"checkpoint {where} lacks {len(missing)} tensors the model needs: {shown}; it does not "
                           "match the backbone architecture (wrong backbone, depth or file layout?); nothing was "
                           "loaded")
    for key in source:
        if key in target:
            continue
        drop = next((p for p in drop_prefixes if key.startswith(p)), None)
        if drop:
            report.dropped[prefix + key] = "source classifier/head, replaced by the task head"
        else:
            report.unexpected.append(prefix + key)
    if strict_unexpected and report.unexpected:
        shown = ", ".join(report.unexpected[:6]) + (f" and {len(report.unexpected) - 6} more"
                                                    if len(report.unexpected) > 6 else "")
        raise WeightsError(f"checkpoint {where} holds {len(report.unexpected)} tensors this backbone does not have: "
                           f"{shown}; the file is not the one its name says (renamed keys or another model); "
                           "nothing was loaded")
    # strict=False only because fresh tensors (allow_new) are absent; every other key is checked above.
    module.load_state_dict(result, strict=False)
