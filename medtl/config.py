"""Typed experiment config: YAML plus ``--set a.b=value`` overrides.

Unknown keys are errors with a did-you-mean; relative paths resolve against the
config file's folder. The schema below is the single declaration of every key:
the CLI never re-declares them.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .errors import ConfigError, UnknownNameError
from .plumbing.paths import missing_file_message

PRETRAINED_KEYWORDS = ("imagenet", "medicalnet", "none", "source")
DEFAULT_IMAGE_SIZE = {2: [224, 224], 3: [96, 96, 96]}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AugmentConfig(_Section):
    """``data.augment``: random training augmentation, seeded per epoch (never used for validation)."""

    flip: bool = False  # off by default: left/right carries meaning in many tasks
    rotate_deg: float = Field(10.0, ge=0, le=180)
    scale: float = Field(0.1, ge=0, lt=1)
    intensity: float = Field(0.1, ge=0, lt=1)
    enabled: bool = True


class SlidingWindowConfig(_Section):
    """``data.sliding_window``: how ``data.mode: patch`` predicts a whole image from patch-sized windows."""

    overlap: float = Field(0.5, ge=0, lt=1)  # share of a window shared with its neighbour, per axis
    blend: Literal["gaussian", "constant"] = "gaussian"  # gaussian: window centres count more than borders
    sigma_scale: float = Field(0.125, gt=0)  # gaussian blending: sigma as a share of the window size
    batch_size: int = Field(4, ge=1)  # windows per forward pass


class DataConfig(_Section):
    """``data``: which manifest, and how every image becomes a network input.

    Per-axis lists are checked against ``dims`` once, here: ``image_size`` and ``spacing``
    need exactly ``dims`` values (a single number for ``image_size`` means the same size on
    every axis), ``window`` is (center, width) and ``percentiles`` is (low, high). Every
    later stage reads these normalised values, so what the report prints is what the
    network saw.
    """

    manifest: Path | None = None
    dims: Literal[2, 3] = 2
    image_size: list[int] = Field(default=None, validate_default=False)  # default: 224x224 (2D), 96^3 (3D)
    spacing: list[float] | None = None  # 3D: resample to this spacing (mm) before resizing
    intensity: Literal["percentile", "window", "range", "none"] = "percentile"
    window: list[float] = Field(default_factory=lambda: [40.0, 400.0])  # center, width (intensity=window)
    percentiles: list[float] = Field(default_factory=lambda: [0.5, 99.5])
    value_range: list[float] = Field(default_factory=lambda: [0.0, 255.0])  # low, high (intensity=range) -> 0..1
    rgb: Literal["refuse", "luminance"] = "refuse"  # colour PNG/JPEG/TIFF: refuse, or 0.299R+0.587G+0.114B
    resample_mask: bool = False  # resample a mask with other geometry (nearest) instead of refusing it
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    # native resolution (docs/patch-mode.md): resize = the whole image to image_size; patch = keep the extent,
    # train on patch_size patches, predict by sliding window
    mode: Literal["resize", "patch"] = "resize"
    patch_size: list[int] | None = None  # patch mode: one value per axis (or one number); multiples of 32
    patches_per_case: int = Field(4, ge=1)  # patches drawn from each training case per epoch
    foreground_ratio: float = Field(0.5, ge=0, le=1)  # share of patches centred on a mask voxel (when there is one)
    roi: Literal["none", "center", "mask"] = "none"  # classification in patch mode: one crop, or all windows
    aggregate: Literal["mean", "max"] = "mean"  # classification, roi none: how window logits become one
    sliding_window: SlidingWindowConfig = Field(default_factory=SlidingWindowConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_and_isotropic_size(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        size, dims = raw.get("image_size"), raw.get("dims", 2)
        if size is None:
            raw = {**raw, "image_size": DEFAULT_IMAGE_SIZE.get(dims, [224, 224])}
        elif isinstance(size, int) and not isinstance(size, bool) and dims in (2, 3):
            raw = {**raw, "image_size": [size] * dims}
        patch = raw.get("patch_size")
        if isinstance(patch, int) and not isinstance(patch, bool) and dims in (2, 3):
            raw = {**raw, "patch_size": [patch] * dims}
        return raw

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or value[1] <= 0:
            raise ValueError(f"data.window = {value}: give [center, width] with width > 0, e.g. [40, 400]")
        return value

    @field_validator("value_range")
    @classmethod
    def _check_value_range(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not value[0] < value[1]:
            raise ValueError(f"data.value_range = {value}: give [low, high] with low < high, e.g. [0, 255]")
        return value

    @field_validator("percentiles")
    @classmethod
    def _check_percentiles(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not 0 <= value[0] < value[1] <= 100:
            raise ValueError(f"data.percentiles = {value}: give [low, high] with 0 <= low < high <= 100, "
                             "e.g. [0.5, 99.5]")
        return value

    @model_validator(mode="after")
    def _check_axes(self) -> "DataConfig":
        if any(s < 1 for s in self.image_size):
            raise ValueError(f"data.image_size = {self.image_size}: sizes must be >= 1")
        if len(self.image_size) != self.dims:
            raise ValueError(f"data.image_size = {self.image_size} has {len(self.image_size)} value(s), but "
                             f"data.dims is {self.dims}: give {self.dims} sizes (one per axis, "
                             f"{'rows, columns' if self.dims == 2 else 'slices, rows, columns'}) or one number")
        if self.spacing is not None:
            if self.dims == 2:
                raise ValueError(f"data.spacing = {self.spacing} is used for 3D resampling only; remove it or "
                                 "set data.dims: 3")
            if len(self.spacing) != 3 or any(s <= 0 for s in self.spacing):
                raise ValueError(f"data.spacing = {self.spacing}: give 3 positive values in mm "
                                 "(slice, row, column), e.g. [3.0, 0.9, 0.9]")
        self._check_patch_settings()
        return self

    @property
    def fixed_size(self) -> bool:
        """Whether every prepared case has one size (resize mode, or one ROI crop): batches of whole cases.

        Otherwise (patch mode without an ROI) cases keep their native extent: training uses
        patches, inference slides windows over each case.
        """
        return self.mode == "resize" or self.roi != "none"

    def _check_patch_settings(self) -> None:
        if self.mode == "resize":
            if self.patch_size is not None:
                raise ValueError(f"data.patch_size = {self.patch_size} is used in data.mode: patch only; remove it "
                                 "or set data.mode: patch")
            if self.roi != "none":
                raise ValueError(f"data.roi = {self.roi} is used in data.mode: patch only (resize mode always sees "
                                 "the whole image)")
            return
        if self.patch_size is None:
            raise ValueError(f"data.mode: patch needs data.patch_size: {self.dims} sizes (one per axis) or one "
                             f"number, e.g. {[96] * self.dims if self.dims == 3 else [256, 256]}")
        if len(self.patch_size) != self.dims or any(s < 1 for s in self.patch_size):
            raise ValueError(f"data.patch_size = {self.patch_size}: give {self.dims} sizes >= 1 (one per axis) or "
                             "one number")


class ModelConfig(_Section):
    """``model``: the backbone and where its starting weights come from."""

    backbone: str = "resnet18"
    pretrained: str = "imagenet"  # imagenet | medicalnet | none | path to a checkpoint
    input_adapt: Literal["sum", "mean", "first", "random"] = "sum"
    inflate: Literal["mean", "center"] = "mean"
    dropout: float = Field(0.0, ge=0, lt=1)


class FinetuneConfig(_Section):
    """``finetune``: which layers train, and how strongly they are held to the pretrained weights."""

    strategy: Literal["linear", "full", "gradual", "discriminative"] = "full"
    l2sp: float = Field(0.0, ge=0)
    unfreeze_every: int = Field(1, ge=1)  # gradual: epochs between unfreezing stages
    lr_decay: float = Field(0.5, gt=0, le=1)  # discriminative: factor per stage below the head


class TrainConfig(_Section):
    """``train``: optimiser, schedule, loss, model selection and the device."""

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
    threads: int | None = Field(None, ge=1)  # torch threads; default: the cores left after the loader workers
    keep_state: bool = False  # keep each fold's last optimiser state (state.pt) after the fold finishes


class CVConfig(_Section):
    """``cv``: patient-grouped K-fold cross-validation and bootstrap settings."""

    folds: int = Field(5, ge=2)
    group_by: str = "patient_id"
    repeats: int = Field(1, ge=1)
    bootstrap: int = Field(1000, ge=100)  # resamples of patients for CIs and paired tests
    # auto: fixed when the manifest has a split column; leave_site_out: each site of the site column is the test set once
    scheme: Literal["auto", "kfold", "fixed", "leave_site_out"] = "auto"
    splits_file: Path | None = None  # reuse splits: CSV with case_id + split (fixed) or case_id + fold (k-fold)
    split_seed_by: Literal["salt", "patient_id"] = "salt"  # patient_id: folds reproducible on any machine


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


class AdaptConfig(_Section):
    """``adapt``: domain adaptation across sites (docs/sites.md); ``method: none`` is plain fine-tuning (ERM).

    ``dann`` aligns encoder features of the labelled training cases with unlabelled
    target images through a gradient-reversal layer; ``reweight`` weights each training
    case's loss by an estimated density ratio p_target / p_source. Target images are
    ``target_manifest`` (only its image column is read), or in ``cv.scheme:
    leave_site_out`` the held-out site's images (their labels are never passed on).
    """

    method: Literal["none", "dann", "reweight"] = "none"
    target_manifest: Path | None = None  # unlabelled target-site images (image column; other columns unread)
    lambda_max: float = Field(1.0, ge=0)  # dann: final weight of the reversed domain gradient
    lambda_gamma: float = Field(10.0, gt=0)  # dann: ramp lambda_max * (2 / (1 + exp(-gamma * p)) - 1), p = progress
    discriminator_width: int = Field(256, ge=8)  # dann: hidden units of the 2-layer domain discriminator
    weight_clip: float = Field(10.0, gt=1)  # reweight: weights are clipped to [1/clip, clip]
    normalise_weights: bool = True  # reweight: scale the weights to mean 1 over the training cases


class ArmConfig(_Section):
    """An extra arm: a name plus config overrides, e.g. {name: linear, set: {finetune.strategy: linear}}."""

    name: str
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # the name becomes a folder (RUN/arms/<name>/): no separators, no "..", nothing hidden
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value) or ".." in value:
            raise ValueError(f"arm name {value!r} must be a plain name (letters, digits, '_', '.', '-'; "
                             "starting with a letter or digit), e.g. l2sp_0.01")
        return value


class Config(_Section):
    """A medtl experiment (see docs/config.md).

    Build one with ``load_config`` (YAML plus ``--set`` strings) and make variants with
    ``derive`` (typed values): both validate with the same did-you-mean messages and
    resolve relative paths against the folder of the config file.
    """

    task: Literal["classification", "segmentation"] = "classification"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cv: CVConfig = Field(default_factory=CVConfig)
    compare: list[str | ArmConfig] = Field(default_factory=list)
    source: SourceConfig | None = None
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)

    _base: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _check_task_and_mode(self) -> "Config":
        if self.task == "segmentation" and self.data.roi != "none":
            raise ValueError(f"data.roi = {self.data.roi} applies to classification; segmentation in patch mode "
                             "always predicts the whole image by sliding window (remove data.roi)")
        adapt = self.adapt
        if adapt.method != "none" and not self.data.fixed_size:
            raise ValueError(f"adapt.method: {adapt.method} needs whole-image inputs (data.mode: resize, or a "
                             "data.roi crop); native-extent patch training is not supported with domain adaptation")
        if adapt.method == "reweight" and self.train.class_weights != "none":
            raise ValueError("adapt.method: reweight and train.class_weights both weight the loss per case; use one "
                             "(set train.class_weights: none)")
        return self

    @property
    def base(self) -> Path:
        """The folder relative paths in this config resolve against (the config file's folder)."""
        return self._base

    def derive(self, overrides: Mapping[str, Any], where: str = "overrides", check_paths: bool = True) -> "Config":
        """A new config: a deep copy of this one with ``{"a.b": value}`` overrides applied.

        Values keep their types (no string round trip: ``"007"`` stays a string); the
        result is validated like a loaded config, and this config is never modified.
        """
        raw = copy.deepcopy(self.model_dump(mode="python"))
        for key, value in overrides.items():
            set_dotted(raw, str(key), copy.deepcopy(value), where)
        return _validated(raw, where, self._base, check_paths)


def _model_at(location: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in location:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _explain(error: ValidationError, source: str) -> ConfigError:
    lines = []
    for item in error.errors():
        location = tuple(p for p in item["loc"] if not isinstance(p, int) or p >= 0)
        dotted = ".".join(str(p) for p in location)
        if item["type"] == "extra_forbidden":
            parent = _model_at(location[:-1])
            known = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.5)
            hint = f"; did you mean '{'.'.join([*map(str, location[:-1]), close[0]])}'?" if close else \
                f"; known keys here: {', '.join(known)}"
            lines.append(f"unknown key '{dotted}'{hint}")
        elif item["type"] == "value_error":
            lines.append(item["msg"].removeprefix("Value error, "))
        else:
            lines.append(f"'{dotted}' = {item.get('input')!r}: {item['msg']}")
    return ConfigError(f"invalid config {source}: " + " | ".join(dict.fromkeys(lines)))


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` from the command line -> ("a.b", value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}; for example --set train.epochs=3")
    key, raw = text.split("=", 1)
    if not [p for p in key.strip().split(".") if p]:
        raise ConfigError(f"--set has an empty key in {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(raw: dict, key: str, value: Any, where: str) -> None:
    """``raw["a"]["b"] = value`` for ``key="a.b"``; a mapping value merges into an existing section."""
    parts = [p for p in key.split(".") if p]
    if not parts:
        raise ConfigError(f"{where}: empty key")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{key}': '{part}' is a value, not a section")
        node = child
    last = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        for sub_key, sub_value in value.items():
            set_dotted(node[last], str(sub_key), sub_value, where)
    else:
        node[last] = value


def _resolve(base: Path, path: Path | None) -> Path | None:
    return None if path is None or path.is_absolute() else (base / path).resolve()


def _check_pretrained(value: str, base: Path, key: str, check: bool) -> str:
    """A pretrained keyword stays; anything else is a checkpoint path, resolved and (when checking) required."""
    if value in PRETRAINED_KEYWORDS:
        return value
    path = Path(value) if Path(value).is_absolute() else (base / value).resolve()
    if check and not path.is_file():
        close = difflib.get_close_matches(value, PRETRAINED_KEYWORDS, n=1, cutoff=0.6)
        if close and "/" not in value and "." not in value:
            raise UnknownNameError(f"{key} = '{value}' is neither a keyword nor a file; did you mean "
                                   f"'{close[0]}'? Use {', '.join(PRETRAINED_KEYWORDS)} or a checkpoint path")
        raise UnknownNameError(missing_file_message(path, f"{key} checkpoint", f"use one of "
                                                    f"{', '.join(PRETRAINED_KEYWORDS)} or an existing file"))
    return str(path)


def _validated(raw: dict, source: str, base: Path, check_paths: bool) -> Config:
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, source) from None
    config._base = base
    config.data.manifest = _resolve(base, config.data.manifest) or config.data.manifest
    config.cv.splits_file = _resolve(base, config.cv.splits_file) or config.cv.splits_file
    config.adapt.target_manifest = _resolve(base, config.adapt.target_manifest) or config.adapt.target_manifest
    config.model.pretrained = _check_pretrained(config.model.pretrained, base, "model.pretrained", check_paths)
    if config.source is not None:
        config.source.manifest = _resolve(base, config.source.manifest) or config.source.manifest
        config.source.pretrained = _check_pretrained(config.source.pretrained, base, "source.pretrained",
                                                     check_paths)
    return config


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                check_paths: bool = True) -> Config:
    """Read YAML at ``path`` (or defaults), apply ``--set`` overrides, validate, resolve paths.

    ``check_paths=False`` reads a stored run config whose input files may have moved since.
    """
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
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(raw, key, value, f"--set {text}")
    return _validated(raw, source, base, check_paths)


def dump_config(config: Config) -> str:
    """Resolved config as YAML (paths as strings)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def flatten(config: Config) -> dict[str, Any]:
    """``{"a.b": value}`` for every leaf of the resolved config (JSON values): for diffs and messages."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            out[prefix] = node

    walk("", config.model_dump(mode="json"))
    return out


def config_differences(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ between two configs, sorted."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
