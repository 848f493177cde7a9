"""Parameter-efficient fine-tuning strategies: ``lora``, ``bitfit``, ``norm-only`` (docs/peft.md).

The backbone's pretrained tensors stay frozen (BatchNorm statistics too); what trains is
the task head plus: LoRA adapters (``lora``), every backbone bias (``bitfit``, Ben Zaken
et al. 2022), or the affine parameters of every normalisation layer (``norm-only``).

Checkpoints of such a run hold only what trains (``TunedState``): the adapters or
tuned tensors, the head, and the SHA-256 of the frozen base; a checkpoint is refused on
any other base. The final model merges the adapters into the weights
(``medtl.models.lora.merge_lora``), so prediction and export see a plain network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..config import FinetuneConfig
from ..errors import ConfigError, WeightsError
from ..models.build import MedtlModel
from ..models.lora import add_lora, lora_targets
from ..plumbing.atomic import atomic_path

PEFT_STRATEGIES = ("lora", "bitfit", "norm-only")
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
          nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def tuned_backbone_names(model: MedtlModel, strategy: str) -> list[str]:
    """Backbone parameter names (``backbone.*``) that train under ``strategy``, besides the head."""
    if strategy == "lora":
        return [f"backbone.{n}" for n, _ in model.backbone.named_parameters() if ".lora_" in f".{n}"]
    if strategy == "bitfit":
        return [f"backbone.{n}" for n, _ in model.backbone.named_parameters() if n.endswith("bias")]
    if strategy == "norm-only":
        return [f"backbone.{name}.{p}" for name, module in model.backbone.named_modules() if isinstance(module, _NORMS)
                for p, _ in module.named_parameters(recurse=False)]
    return []


def prepare(model: MedtlModel, finetune: FinetuneConfig) -> "TunedState | None":
    """Set a PEFT strategy up on ``model`` (adapters added for ``lora``); ``None`` for the other strategies."""
    if finetune.strategy not in PEFT_STRATEGIES:
        return None
    base_hash = _state_hash(model.backbone.state_dict())  # before any adapter: the pretrained backbone
    if finetune.strategy == "lora":
        lora = finetune.lora
        names = lora_targets(model.backbone, lora.targets, skip=(model.spec.first_conv.rsplit(".", 1)[0],))
        if not names:
            raise ConfigError(f"finetune.lora.targets {lora.targets} match no nn.Linear or ungrouped convolution of "
                              f"backbone '{model.spec.name}'; layer names: "
                              f"{', '.join(n for n, _ in list(model.backbone.named_modules())[1:8])}, ...")
        add_lora(model.backbone, names, lora.rank, lora.alpha, lora.dropout)
    tuned = tuned_backbone_names(model, finetune.strategy)
    if not tuned:
        raise ConfigError(f"finetune.strategy {finetune.strategy} finds nothing to train in backbone "
                          f"'{model.spec.name}' (no biases or normalisation layers); use lora or linear")
    return TunedState(model, finetune.strategy, base_hash)


def enable_tuned(model: MedtlModel, strategy: str) -> None:
    """After the backbone stages are frozen: let the strategy's own tensors train."""
    wanted = set(tuned_backbone_names(model, strategy))
    for name, parameter in model.named_parameters():
        if name in wanted:
            parameter.requires_grad_(True)


class TunedState:
    """The checkpoint part of a PEFT run: tuned tensors + head, bound to the frozen base by its hash."""

    def __init__(self, model: MedtlModel, strategy: str, base_hash: str):
        self.model, self.strategy, self.base_hash = model, strategy, base_hash

    def keys(self) -> list[str]:
        tuned = set(tuned_backbone_names(self.model, self.strategy))
        return [k for k in self.model.state_dict() if k.startswith("head.") or k in tuned]

    def state_dict(self) -> dict:
        state = self.model.state_dict()
        return {"base_sha256": self.base_hash, "strategy": self.strategy,
                "tensors": {k: state[k] for k in self.keys()}}

    def load_state_dict(self, state: dict) -> None:
        if state.get("base_sha256") != self.base_hash or state.get("strategy") != self.strategy:
            raise WeightsError(f"this {state.get('strategy')} checkpoint was trained on a base with sha256 "
                               f"{str(state.get('base_sha256'))[:16]}..., but the model's frozen base is "
                               f"{self.base_hash[:16]}... ({self.strategy}); delete the fold's checkpoints to "
                               "start again on this base")
        tensors = state["tensors"]
        expected = set(self.keys())
        if set(tensors) != expected:
            missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
            raise WeightsError(f"checkpoint tensors do not match the model's tuned tensors (missing {missing[:4]}, "
                               f"unexpected {extra[:4]})")
        own = self.model.state_dict()
        with torch.no_grad():
            for key, value in tensors.items():
                own[key].copy_(value)

    def save(self, path: Path, metadata: dict) -> None:
        """The tuned tensors as safetensors (the model selection's ``best.safetensors``)."""
        from safetensors.torch import save_file

        state = self.state_dict()
        with atomic_path(path) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in state["tensors"].items()}, str(tmp),
                      metadata={**{k: str(v) for k, v in metadata.items()}, "base_sha256": self.base_hash,
                                "strategy": self.strategy})

    def load(self, path: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
        self.load_state_dict({"base_sha256": meta.get("base_sha256"), "strategy": meta.get("strategy"),
                              "tensors": load_file(str(path))})


def trainable_counts(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (adapters included in both; frozen base in total)."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def _state_hash(state: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
