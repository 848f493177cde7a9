"""Typed experiment config: YAML plus ``--set a.b=value`` overrides.

Unknown keys are errors with a did-you-mean; relative paths resolve against the
config file's folder. The schema below is the single declaration of every key:
the CLI never re-declares them.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AugmentConfig(_Section):
    flip: bool = False  # off by default: left/right carries meaning in many tasks
    rotate_deg: float = Field(10.0, ge=0, le=180)
    scale: float = Field(0.1, ge=0, lt=1)
    intensity: float = Field(0.1, ge=0, lt=1)
    enabled: bool = True


class DataConfig(_Section):
    manifest: Path | None = None
    dims: Literal[2, 3] = 2
    image_size: list[int] = Field(default_factory=lambda: [224, 224])
    spacing: list[float] | None = None  # 3D: resample to this spacing (mm) before resizing
    intensity: Literal["percentile", "window", "none"] = "percentile"
    window: list[float] = Field(default_factory=lambda: [40.0, 400.0])  # center, width (intensity=window)
    percentiles: list[float] = Field(default_factory=lambda: [0.5, 99.5])
    resample_mask: bool = False  # resample a mask with other geometry (nearest) instead of refusing it
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @field_validator("image_size", mode="before")
    @classmethod
    def _scalar_size(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value


class ModelConfig(_Section):
    backbone: str = "resnet18"
    pretrained: str = "imagenet"  # imagenet | medicalnet | none | path to a checkpoint
    input_adapt: Literal["sum", "mean", "first", "random"] = "sum"
    inflate: Literal["mean", "center"] = "mean"
    dropout: float = Field(0.0, ge=0, lt=1)


class FinetuneConfig(_Section):
    strategy: Literal["linear", "full", "gradual", "discriminative"] = "full"
    l2sp: float = Field(0.0, ge=0)
    unfreeze_every: int = Field(1, ge=1)  # gradual: epochs between unfreezing stages
    lr_decay: float = Field(0.5, gt=0, le=1)  # discriminative: factor per stage below the head


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(1, ge=0)
    loss: Literal["ce", "focal"] = "ce"  # segmentation always uses Dice+CE
    class_weights: Literal["none", "balanced"] = "none"
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    selection: Literal["last", "best_inner"] = "last"  # best_inner: best epoch on an inner patient split
    inner_fraction: float = Field(0.2, gt=0, lt=0.5)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # CUDA only
    workers: int = Field(0, ge=0)


class CVConfig(_Section):
    folds: int = Field(5, ge=2)
    group_by: str = "patient_id"
    repeats: int = Field(1, ge=1)
    bootstrap: int = Field(1000, ge=100)  # resamples of patients for CIs and paired tests


class SourceConfig(_Section):
    """A source stage: supervised pretraining on another manifest before the target task.

    Uses the target config's backbone, dims and preprocessing; ``model.pretrained: source``
    (or the ``source`` arm) fine-tunes from its checkpoint.
    """

    manifest: Path | None = None
    task: Literal["classification", "segmentation"] = "classification"
    pretrained: str = "none"
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)


class ArmConfig(_Section):
    """An extra arm: a name plus config overrides, e.g. {name: linear, set: {finetune.strategy: linear}}."""

    name: str
    set: dict[str, Any] = Field(default_factory=dict)


class Config(_Section):
    """A medtl experiment (see README, "Config reference")."""

    task: Literal["classification", "segmentation"] = "classification"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cv: CVConfig = Field(default_factory=CVConfig)
    compare: list[str | ArmConfig] = Field(default_factory=list)
    source: SourceConfig | None = None


def _model_at(location: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in location:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _explain(error: ValidationError, source: str) -> ConfigError:
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        dotted = ".".join(str(p) for p in location)
        if item["type"] == "extra_forbidden":
            parent = _model_at(location[:-1])
            known = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.5)
            hint = f"; did you mean '{'.'.join([*map(str, location[:-1]), close[0]])}'?" if close else \
                f"; known keys here: {', '.join(known)}"
            lines.append(f"unknown key '{dotted}'{hint}")
        else:
            lines.append(f"'{dotted}' = {item.get('input')!r}: {item['msg']}")
    return ConfigError(f"invalid config {source}: " + " | ".join(lines))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}; for example --set train.epochs=3")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set has an empty key in {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read YAML at ``path`` (or defaults), apply overrides, validate, resolve paths."""
    raw: dict = {}
    base = Path.cwd()
    source = "(defaults)"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}; see configs/ for examples")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path} must be a mapping of keys, got {type(raw).__name__}")
        base = path.resolve().parent
    raw = apply_overrides(raw, list(overrides))
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, source) from None
    if config.data.manifest is not None and not config.data.manifest.is_absolute():
        config.data.manifest = (base / config.data.manifest).resolve()
    if config.source is not None and config.source.manifest is not None and not config.source.manifest.is_absolute():
        config.source.manifest = (base / config.source.manifest).resolve()
    pretrained = Path(config.model.pretrained)
    if config.model.pretrained not in ("imagenet", "medicalnet", "none", "source") and not pretrained.is_absolute() \
            and (base / pretrained).exists():
        config.model.pretrained = str((base / pretrained).resolve())
    return config


def dump_config(config: Config) -> str:
    """Resolved config as YAML (paths as strings)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
