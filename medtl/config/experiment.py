"""The experiment config (``Config``): loading YAML with ``--set`` overrides, deriving variants, validation.

Unknown keys are errors with a did-you-mean; relative paths resolve against the
config file's folder.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_validator

from ..errors import ConfigError, UnknownNameError
from ..plumbing.paths import missing_file_message
from .base import Section
from .data import DataConfig
from .federated import FederatedConfig
from .meta import META_TASKS, MetaConfig
from .overrides import parse_override, set_dotted
from .privacy import PrivacyConfig
from .sections import (
    SSL_TASKS,
    AdaptConfig,
    ArmConfig,
    CalibrateConfig,
    CardConfig,
    ConformalConfig,
    CVConfig,
    ExplainConfig,
    FinetuneConfig,
    ModelConfig,
    MultitaskConfig,
    RunConfig,
    SourceConfig,
    SSLConfig,
    TaskSpec,
    TrackingConfig,
    TrainConfig,
)
from .tune import TuneConfig

# published weights a backbone may list in its sources (docs/backbones.md says which has which)
PUBLISHED_WEIGHTS = ("imagenet", "medicalnet", "dinov2", "rad-dino", "swin-ssl", "swin-dae", "ct-fm")
PRETRAINED_KEYWORDS = (*PUBLISHED_WEIGHTS, "none", "source")


class Config(Section):
    """A medtl experiment (see docs/config.md).

    Build one with ``load_config`` (YAML plus ``--set`` strings) and make variants with
    ``derive`` (typed values): both validate with the same did-you-mean messages and
    resolve relative paths against the folder of the config file.
    """

    task: Literal["classification", "segmentation", "multitask"] = "classification"
    tasks: list[TaskSpec] = Field(default_factory=list)  # task: multitask: the tasks sharing one encoder
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cv: CVConfig = Field(default_factory=CVConfig)
    compare: list[str | ArmConfig] = Field(default_factory=list)
    source: SourceConfig | None = None
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)
    ssl: SSLConfig = Field(default_factory=SSLConfig)
    meta: MetaConfig = Field(default_factory=MetaConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    fed: FederatedConfig = Field(default_factory=FederatedConfig)
    card: CardConfig = Field(default_factory=CardConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    multitask: MultitaskConfig = Field(default_factory=MultitaskConfig)
    calibrate: CalibrateConfig = Field(default_factory=CalibrateConfig)
    conformal: ConformalConfig = Field(default_factory=ConformalConfig)
    # experiment trackers (none by default: nothing is imported); they record, they never change a result
    track: list[Literal["mlflow", "tensorboard"]] = Field(default_factory=list)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    tune: TuneConfig | None = None  # medtl tune: the search space and how it is searched (nested cv)

    _base: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _check_task_and_mode(self) -> "Config":
        if self.data.positive_class is not None and self.task != "classification":
            where = "tasks[].positive_class" if self.task == "multitask" else "nothing: segmentation has no classes"
            raise ValueError(f"data.positive_class applies to task: classification; for task: {self.task} use {where}")
        if self.task == "segmentation" and self.data.roi != "none":
            raise ValueError(f"data.roi = {self.data.roi} applies to classification; segmentation in patch mode "
                             "always predicts the whole image by sliding window (remove data.roi)")
        adapt = self.adapt
        if self.train.method in ("dann", "reweight") and adapt.method == "none":
            adapt.method = self.train.method  # train.method: dann uses the adapt section like adapt.method: dann
        elif self.train.method is not None and adapt.method != "none" and self.train.method != adapt.method:
            raise ValueError(f"train.method: {self.train.method} and adapt.method: {adapt.method} name two training "
                             "methods; set one of them (adapt.method: dann is train.method: dann)")
        if adapt.method != "none" and not self.data.fixed_size:
            raise ValueError(f"adapt.method: {adapt.method} needs whole-image inputs (data.mode: resize, or a "
                             "data.roi crop); native-extent patch training is not supported with domain adaptation")
        if adapt.method == "reweight" and self.train.class_weights != "none":
            raise ValueError("adapt.method: reweight and train.class_weights both weight the loss per case; use one "
                             "(set train.class_weights: none)")
        if self.source is not None and self.source.task in SSL_TASKS and not self.data.fixed_size:
            raise ValueError(f"source.task: {self.source.task} needs whole-image inputs (data.mode: resize, or a "
                             "data.roi crop); self-supervised pretraining at native extent is not supported")
        _check_multitask(self)
        if (self.calibrate.method != "none" or self.conformal.alpha is not None) and self.task == "segmentation":
            raise ValueError("calibrate / conformal apply to class probabilities (task: classification, or a "
                             "multitask run's classification tasks); task: segmentation has none: remove the "
                             "calibrate / conformal sections")
        if self.source is not None and self.source.task in META_TASKS:
            if not self.data.fixed_size:
                raise ValueError(f"source.task: {self.source.task} needs whole-image inputs (data.mode: resize, or a "
                                 "data.roi crop); episodes stack images of one shape")
            if not self.meta.sources and self.source.manifest is None:
                raise ValueError(f"source.task: {self.source.task} needs labelled episodes: set source.manifest "
                                 "(its label column) or meta.sources: [{manifest: ..., columns: [...]}]")
        if self.privacy.dp:
            _check_private(self)
        if self.train.method in ("fedavg", "fedprox") and self.multitask.weighting == "uncertainty":
            raise ValueError(f"train.method: {self.train.method} with multitask.weighting: uncertainty: the learned "
                             "loss weights would stay with each client and never be averaged; use "
                             "multitask.weighting: equal or fixed")
        if self.fed.executor != "local" and self.run.executor != "local":
            raise ValueError(f"fed.executor: {self.fed.executor} and run.executor: {self.run.executor} would nest "
                             "clusters; send either the folds (run.executor) or each fold's clients (fed.executor)")
        if self.ssl.patient_pairs and self.source is not None and self.source.task == "restore":
            raise ValueError("ssl.patient_pairs applies to simclr and byol (pairs of views); restore has none: "
                             "remove ssl.patient_pairs")
        return self

    @property
    def method_name(self) -> str:
        """The training method this config trains with: ``train.method``, else ``adapt.method``, else ``erm``."""
        return self.train.method or ("erm" if self.adapt.method == "none" else self.adapt.method)

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


def _check_private(config: "Config") -> None:
    """What DP-SGD cannot combine with is refused at load, with what to do instead."""
    refused = [(config.adapt.method != "none", f"adapt.method: {config.adapt.method}",
                "its extra loss on target images is not clipped per image"),
               (not config.data.fixed_size, "native-extent patch mode",
                "several patches of one image would be several records; use data.mode: resize"),
               (config.finetune.l2sp > 0, "finetune.l2sp", "use weight decay instead"),
               (config.task == "multitask", "task: multitask", "train the tasks separately")]
    for is_refused, what, why in refused:
        if is_refused:
            raise ValueError(f"privacy.dp does not combine with {what} ({why})")


def _check_multitask(config: "Config") -> None:
    """``task: multitask`` needs its ``tasks``; what multi-task training does not support is refused here."""
    if config.task != "multitask":
        if config.tasks:
            raise ValueError(f"tasks: is set but task is {config.task}; set task: multitask (or remove tasks:)")
        return
    specs = config.tasks
    if not specs:
        raise ValueError("task: multitask needs tasks:, e.g. [{name: nodule, kind: classification, column: label}, "
                         "{name: lesion, kind: segmentation, column: mask}]")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"tasks: names repeat ({names}); give every task its own name")
    if any(s.kind == "segmentation" and s.positive_class is not None for s in specs):
        raise ValueError("tasks[].positive_class applies to classification tasks; remove it from the segmentation task")
    if sum(s.kind == "segmentation" for s in specs) > 1:
        raise ValueError("tasks: at most one segmentation task (the model has one segmentation decoder); put "
                         "several structures into one mask as labels 1, 2, ...")
    columns = [s.column for s in specs]
    if len(set(columns)) != len(columns):
        raise ValueError(f"tasks: two tasks read the same column ({columns})")
    weighting = config.multitask.weighting
    if weighting != "fixed" and any(s.weight != 1 for s in specs):
        raise ValueError(f"tasks[].weight applies to multitask.weighting: fixed (it is {weighting}); set it or "
                         "remove the weights")
    if weighting == "fixed" and not any(s.weight > 0 for s in specs):
        raise ValueError("multitask.weighting: fixed with every task weight 0 trains nothing; give a task weight > 0")
    unsupported = [(not config.data.fixed_size, "native-extent patch mode (use data.mode: resize, or a data.roi "
                                                "crop)"),
                   (config.adapt.method != "none", f"adapt.method: {config.adapt.method}"),
                   (config.train.class_weights != "none", "train.class_weights: balanced"),
                   (config.train.sampler != "shuffle", "train.sampler: balanced")]
    for refused, what in unsupported:
        if refused:
            raise ValueError(f"task: multitask does not support {what}")


def _model_at(location: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in location:
        if isinstance(part, int):  # a list index: the list's item model is already selected
            continue
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
    config.ssl.probe_manifest = _resolve(base, config.ssl.probe_manifest) or config.ssl.probe_manifest
    config.model.pretrained = _check_pretrained(config.model.pretrained, base, "model.pretrained", check_paths)
    if config.source is not None:
        config.source.manifest = _resolve(base, config.source.manifest) or config.source.manifest
        for meta_source in config.meta.sources:
            meta_source.manifest = _resolve(base, meta_source.manifest) or meta_source.manifest
        config.source.pretrained = _check_pretrained(config.source.pretrained, base, "source.pretrained",
                                                     check_paths)
    if config.tune is not None:
        check_search_space(config, raw, source, check_paths)
    return config


def check_search_space(config: Config, raw: dict, source: str, check_paths: bool) -> None:
    """Every value ``tune.space`` can give is one the config takes: the key exists, its type accepts the range's
    ends and middle (or every choice); grid search only over discrete dimensions. A ``ConfigError`` naming the key.
    (``tune.metric`` is checked against the task's metrics by ``medtl.tune.objective``.)"""
    base = {k: v for k, v in raw.items() if k != "tune"}
    for key, distribution in config.tune.space.items():
        for value in distribution.probes():
            trial = copy.deepcopy(base)
            try:
                set_dotted(trial, key, copy.deepcopy(value), f"tune.space.{key}")
                _validated(trial, source, config.base, check_paths)
            except ConfigError as exc:
                reason = str(exc).removeprefix(f"invalid config {source}: ")
                raise ConfigError(f"invalid config {source}: tune.space key '{key}' with value {value!r} cannot run: "
                                  f"{reason}") from None
    if config.tune.sampler == "grid":
        continuous = [k for k, d in config.tune.space.items() if d.grid is None]
        if continuous:
            raise ConfigError(f"invalid config {source}: tune.sampler: grid needs discrete dimensions (choice, int); "
                              f"{', '.join(continuous)} are continuous: give them as {{choice: [...]}} or use tpe")


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
