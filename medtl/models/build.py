"""``create_model``: backbone + head + pretrained weights, with an adaptation report."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..config import PUBLISHED_WEIGHTS
from ..errors import ConfigError, MedtlError
from ..plumbing.hashing import sha256_file
from .adapt import AdaptationReport, transfer_state
from .backbones import BackboneSpec, get_backbone_spec
from .heads import HEADS, MultiTaskHead
from .keymaps import head_keys, to_backbone_keys
from .weights import WEIGHT_FILES, ensure_weights, load_state_dict_file

log = logging.getLogger("medtl")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class MedtlModel(nn.Module):
    """A backbone (returning multi-scale features) under a task head.

    ``frozen_stages`` names backbone stages whose parameters are frozen; their
    BatchNorm layers stay in eval mode (running statistics frozen) even in ``train()``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, spec: BackboneSpec, task: str, dims: int,
                 in_channels: int, num_classes: int | dict[str, int]):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.spec, self.task, self.dims = spec, task, dims
        self.in_channels, self.num_classes = in_channels, num_classes
        self.frozen_stages: set[str] = set()
        self.adaptation: AdaptationReport | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    @property
    def dense_output(self) -> bool:
        """Logits per voxel (segmentation) rather than per image."""
        return self.head.dense_output

    def forward_with_features(self, x: torch.Tensor, n_head: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits of the first n_head images (default all), pooled bottleneck features (B, C) of all)``.

        One encoder pass serves both the task head and a domain discriminator (DANN), so
        the head is not run on images that have no target (unlabelled target images).
        """
        size = x.shape[2:]
        x = self._padded(x)
        features = self.backbone(x)
        pooled = torch.flatten(features[-1].mean(dim=tuple(range(2, features[-1].dim()))), 1)
        if n_head is not None:
            features = [f[:n_head] for f in features]
        logits = self.head(features, x.shape)
        if isinstance(logits, dict):  # multi-task: crop each dense head's logits
            return {name: self._cropped(out, size) if self.head.heads[name].dense_output else out
                    for name, out in logits.items()}, pooled
        return (self._cropped(logits, size) if self.head.dense_output else logits), pooled

    @staticmethod
    def _cropped(logits: torch.Tensor, size) -> torch.Tensor:
        return logits[(..., *[slice(0, s) for s in size])]

    @property
    def task_kinds(self) -> dict[str, str]:
        """Multi-task models: ``{task: classification | segmentation}`` in head order (empty otherwise)."""
        if not isinstance(self.head, MultiTaskHead):
            return {}
        return {name: "segmentation" if head.dense_output else "classification"
                for name, head in self.head.heads.items()}

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """Dense heads: the decoder needs sizes divisible by the deepest stride, so pad at the far end (the
        logits are cropped back)."""
        if not self.head.pads_input:
            return x
        stride = self.spec.reductions[-1]
        padding = [(-s) % stride for s in x.shape[2:]]
        if not any(padding):
            return x
        flat = [p for amount in reversed(padding) for p in (0, amount)]
        return nn.functional.pad(x, flat, mode="replicate" if x.dim() <= 5 else "constant")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled bottleneck features ``(B, C)`` of the encoder alone (the head is not run), from the same
        (padded) input the encoder sees in ``forward``."""
        features = self.backbone(self._padded(x))
        return torch.flatten(features[-1].mean(dim=tuple(range(2, features[-1].dim()))), 1)

    def stages(self) -> list[tuple[str, list[nn.Module]]]:
        """Backbone stages from input to top (the head is not a stage)."""
        return self.backbone.stages()

    def set_frozen(self, stage_names: set[str]) -> None:
        """Freeze exactly these backbone stages (parameters and BatchNorm statistics)."""
        known = {name for name, _ in self.stages()}
        unknown = set(stage_names) - known
        if unknown:
            raise MedtlError(f"unknown stages {sorted(unknown)}; this backbone has {sorted(known)}")
        self.frozen_stages = set(stage_names)
        for name, modules in self.stages():
            for module in modules:
                for parameter in module.parameters():
                    parameter.requires_grad_(name not in self.frozen_stages)
        self.train(self.training)

    def train(self, mode: bool = True) -> "MedtlModel":
        super().train(mode)
        for name, modules in self.stages():
            if name in self.frozen_stages:
                for module in modules:
                    for layer in module.modules():
                        if isinstance(layer, _BN):
                            layer.eval()
        return self

    def describe(self) -> dict:
        """Checkpoint metadata: what is needed to build this model again."""
        import json

        if self.task_kinds:
            return {"backbone": self.spec.name, "dims": self.dims, "in_channels": self.in_channels,
                    "num_classes": json.dumps(self.num_classes), "task": self.task,
                    "task_kinds": json.dumps(self.task_kinds)}
        return {"backbone": self.spec.name, "dims": self.dims, "in_channels": self.in_channels,
                "num_classes": self.num_classes, "task": self.task}


def create_model(backbone: str, *, dims: int, num_classes: int | dict[str, int], in_channels: int = 1,
                 task: str = "classification", pretrained: str | Path | None = None, input_adapt: str = "sum",
                 inflate: str = "mean", dropout: float = 0.0, download: bool = True,
                 class_names: list[str] | None = None, task_kinds: dict[str, str] | None = None) -> MedtlModel:
    """Build a backbone + head and put pretrained weights under it.

    ``pretrained``: ``None``/``"none"`` (random init), a published source the backbone lists (``"imagenet"``,
    ``"medicalnet"``, ``"dinov2"``, ``"rad-dino"``, ``"swin-ssl"``, ``"swin-dae"``, ``"ct-fm"``), or a path to a
    ``.pt`` state dict / ``.safetensors`` checkpoint (e.g. from ``medtl pretrain``). The model's
    ``adaptation`` attribute reports what happened to every tensor. With ``class_names``, a
    checkpoint's head is reused only if it was trained for the same classes.
    ``task="multitask"``: ``task_kinds`` (``{task: classification | segmentation}``) and
    ``num_classes`` (``{task: outputs}``) give one head per task, built in that order.
    """
    spec = get_backbone_spec(backbone)
    if dims not in spec.dims:
        raise ConfigError(f"backbone '{backbone}' supports dims {spec.dims}, not {dims}")
    counts = list(num_classes.values()) if isinstance(num_classes, dict) else [num_classes]
    if min(counts, default=0) < 1 or in_channels < 1:
        raise ConfigError(f"num_classes and in_channels must be >= 1 (got {num_classes}, {in_channels})")
    source = "none" if pretrained in (None, "none", "") else str(pretrained)
    weight = WEIGHT_FILES[spec.source_for(source, dims)] if source in PUBLISHED_WEIGHTS else None
    net = spec.builder(dims, in_channels, **dict(weight.arch if weight else ()))
    if task_kinds:  # several heads (task: multitask)
        if not task_kinds or set(task_kinds) != set(num_classes):
            raise ConfigError("a multitask model needs task_kinds and num_classes for the same tasks")
        head = MultiTaskHead({name: HEADS.get(kind, "head kind")(spec.feature_channels, num_classes[name], dims,
                                                                 in_channels, dropout)
                              for name, kind in task_kinds.items()})
    else:
        head = HEADS.get(task, "head kind")(spec.feature_channels, num_classes, dims, in_channels, dropout)
    if spec.norm == "group":  # the decoder's BatchNorm too: every layer normalises each image by itself
        from .group_norm import to_group_norm

        to_group_norm(head)
    model = MedtlModel(net, head, spec=spec, task=task, dims=dims, in_channels=in_channels, num_classes=num_classes)
    options = dict(first_conv=spec.first_conv, in_channels=in_channels, input_adapt=input_adapt, inflate=inflate,
                   prefix="backbone.")
    if source == "none":
        report = AdaptationReport(source="none")
        report.new = {"backbone.*": "random init (model.pretrained=none)", "head.*": "random init"}
    elif weight is not None:
        path = ensure_weights(weight, download=download)
        report = AdaptationReport(source=f"{source} ({weight.key})", file=weight.filename, sha256=sha256_file(path),
                                  licence=weight.licence, revision=weight.revision)
        state, _ = load_state_dict_file(path)
        renamed = to_backbone_keys(state, weight.layout)
        report.dropped.update({f"backbone.{k}": why for k, why in renamed.dropped.items()})
        transfer_state(net, renamed.state, report, drop_prefixes=spec.classifier_prefixes + ("conv_seg.",),
                       strict_unexpected=True, **options)
        report.new["head.*"] = f"{task} head, freshly initialised"
    else:
        report = _load_own_checkpoint(model, Path(source), options, class_names)
    model.adaptation = report
    log.debug(report.summary())
    return model


def _load_own_checkpoint(model: MedtlModel, path: Path, options: dict, class_names: list[str] | None
                         ) -> AdaptationReport:
    import json

    state, metadata = load_state_dict_file(path)
    expected = metadata.get("backbone")
    if expected and expected != model.spec.name:
        raise ConfigError(f"checkpoint {path} was trained with backbone '{expected}', but model.backbone is "
                          f"'{model.spec.name}'; set model.backbone={expected}")
    report = AdaptationReport(source="checkpoint", file=path.name, sha256=sha256_file(path))
    transfer_state(model.backbone, to_backbone_keys(state, "medtl").state, report,
                   drop_prefixes=model.spec.classifier_prefixes, **options)
    report.unexpected = [k for k in report.unexpected if not k.startswith("backbone.head.")]
    source_head = head_keys(state)
    target_head = model.head.state_dict()
    same_shape = source_head.keys() == target_head.keys() and all(
        source_head[k].shape == target_head[k].shape for k in target_head)
    source_classes = json.loads(metadata["class_names"]) if "class_names" in metadata else None
    other_task = class_names is not None and source_classes is not None and source_classes != class_names
    if source_head and same_shape and other_task:
        report.new["head.*"] = (f"re-initialised: the checkpoint's head was trained for classes {source_classes}, "
                                f"this task has {class_names}")
    elif source_head and same_shape:
        model.head.load_state_dict(source_head)
        report.loaded.extend(f"head.{k}" for k in target_head)
    elif source_head:
        report.new["head.*"] = (f"re-initialised: the checkpoint's head does not fit this task "
                                f"({metadata.get('num_classes', '?')} outputs vs {model.num_classes} here)")
    else:
        report.new["head.*"] = "checkpoint has no head; freshly initialised"
    return report
