"""Experiment arms: the configured model plus each ``compare`` entry, trained on the same folds.

Each arm's config is derived from the *main* config with ``Config.derive`` (a deep
copy with typed values), so an arm differs from the main arm exactly by its own
overrides, whatever the order of ``compare``: nothing one arm sets leaks into another.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from .config import META_TASKS, PUBLISHED_WEIGHTS, SSL_TASKS, ArmConfig, Config
from .errors import ConfigError, UnknownNameError

log = logging.getLogger("medtl")

PEFT_ARMS = ("lora", "bitfit", "norm-only")  # parameter-efficient strategies: the main arm is named by them
STRATEGY_ARMS = ("linear", "full", "gradual", "discriminative", *PEFT_ARMS)
SOURCE_ARMS = (*PUBLISHED_WEIGHTS, "source")
ADAPT_ARMS = ("erm", "dann", "reweight")  # erm: plain fine-tuning, the control of every adaptation method
META_ARM = "meta"  # model.pretrained: source with a meta-learning source stage (source.task: maml, ...)
TUNED_ARM = "tuned"  # medtl tune: each outer fold's best parameters, retrained on its training set


def is_meta_learned(config: Config) -> bool:
    """Whether the config's model starts from a meta-learning source stage."""
    return config.model.pretrained == "source" and config.source is not None and config.source.task in META_TASKS


def is_supervised_source(config: Config) -> bool:
    """Whether the config's model starts from a supervised source stage (the control of a meta-learned one)."""
    return config.model.pretrained == "source" and config.source is not None and \
        config.source.task not in (*META_TASKS, *SSL_TASKS)


def tuned_arm_name(arm: str, main: bool) -> str:
    """The arm of a searched arm's outer-fold models: ``tuned`` for the main arm, ``<arm>-tuned`` for a compare arm
    listed in ``tune.arms``."""
    return TUNED_ARM if main else f"{arm}-{TUNED_ARM}"


def is_tuned_arm(name: str) -> bool:
    """Whether ``name`` is an arm of outer-fold models of a search (one model per outer fold, own settings each)."""
    return name == TUNED_ARM or name.endswith(f"-{TUNED_ARM}")


DP_ARM = "dp"  # the same model trained with DP-SGD (privacy.dp: true, the privacy section's settings)
POOLED_ARM = "pooled"  # ordinary training on every site's training patients: the control of federated methods
FEDERATED = ("fedavg", "fedprox")
NAMED_ARMS = ("scratch", *SOURCE_ARMS, *STRATEGY_ARMS, *ADAPT_ARMS, DP_ARM, POOLED_ARM, "local")


@dataclass(frozen=True)
class Arm:
    """One arm: its name, its resolved config and the overrides that made it from the main config."""

    name: str
    config: Config
    required: bool  # the main arm must run; an extra arm whose weights are unavailable is skipped, visibly
    overrides: dict[str, Any] = field(default_factory=dict)


def _base_arm_name(config: Config) -> str:
    """A name that says where the main model starts: ``scratch``, ``imagenet-pretrained``,
    ``medicalnet-pretrained``, ``source-pretrained``, ``meta`` (a meta-learned source) or ``checkpoint-pretrained`` (``lora``, ``bitfit`` or
    ``norm-only`` when it fine-tunes with that parameter-efficient strategy); its
    adaptation method (``dann``, ``reweight``) when it uses one, ``erm`` when it is the
    plain fine-tuning control of adaptation arms, and ``multitask`` for a model of several
    tasks (compared with each task's ``<task>-only`` control)."""
    if config.adapt.method != "none":
        return config.adapt.method
    if config.train.method not in (None, "erm"):
        return config.train.method  # a training method of its own (registered): named by it
    if len(config.tasks) > 1:  # task: multitask (the config allows tasks: only there)
        return "multitask"
    if config.finetune.strategy in PEFT_ARMS:
        return config.finetune.strategy
    if any(arm_overrides(entry)[1].get("adapt.method", "none") != "none" for entry in config.compare if entry != LOCAL_ARM):
        return "erm"  # the plain fine-tuning control of the adaptation arms
    if is_meta_learned(config):
        return META_ARM
    source = config.model.pretrained
    if source == "none":
        return "scratch"
    return f"{source}-pretrained" if source in SOURCE_ARMS else "checkpoint-pretrained"


def main_arm_name(config: Config) -> str:
    """The main arm's name (``_base_arm_name``), with ``-dp`` when it trains with DP-SGD (``privacy.dp``)."""
    name = _base_arm_name(config)
    return f"{name}-dp" if config.privacy.dp else name


def arm_overrides(entry: str | ArmConfig) -> tuple[str, dict[str, Any]]:
    """``(name, {dotted key: typed value})`` for one ``compare`` entry."""
    if isinstance(entry, ArmConfig):
        return entry.name, dict(entry.set)
    if entry == "scratch":
        return "scratch", {"model.pretrained": "none"}
    if entry in SOURCE_ARMS:
        return entry, {"model.pretrained": entry}
    if entry in STRATEGY_ARMS:
        return entry, {"finetune.strategy": entry}
    if entry in ADAPT_ARMS:
        return entry, {"adapt.method": "none" if entry == "erm" else entry}
    if entry == DP_ARM:
        return entry, {"privacy.dp": True}
    if entry == POOLED_ARM:
        return entry, {"train.method": "erm"}
    import difflib

    close = difflib.get_close_matches(entry, NAMED_ARMS, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UnknownNameError(f"unknown arm '{entry}' in compare; {hint}use {', '.join(NAMED_ARMS)}, "
                           "or {name: ..., set: {key: value}}")


LOCAL_ARM = "local"  # compare: [local] -> one local-<site> arm per site of the manifest's site column


def manifest_sites(config: Config) -> list[str]:
    """The distinct values of the manifest's ``site`` column, sorted (read without preparing any image)."""
    import csv

    path = config.data.manifest
    if path is None or not path.is_file():
        raise ConfigError("compare: [local] needs data.manifest with a site column (one local arm per site)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sites = sorted({(row.get("site") or "").strip() for row in csv.DictReader(handle)} - {""})
    if not sites:
        raise ConfigError(f"compare: [local] needs a site column in {path.name} (one local arm per site)")
    return sites


def expand_local(config: Config) -> list:
    """``compare`` with ``local`` replaced by ``{name: local-<site>, set: {train.method: erm, train.only_site:
    <site>}}`` for every site: each site trained alone, scored on every site's validation patients."""
    entries = []
    for entry in config.compare:
        if entry != LOCAL_ARM:
            entries.append(entry)
            continue
        for site in manifest_sites(config):
            plain = re.sub(r"[^A-Za-z0-9_-]", "_", site)[:40]
            entries.append(ArmConfig(name=f"local-{plain}", set={"train.method": "erm", "train.only_site": site}))
    return entries


def resolve_arms(config: Config, check_paths: bool = True) -> list[Arm]:
    """Main arm first, then each extra arm derived from the main config by its own overrides."""
    arms = [Arm(main_arm_name(config), config, True)]
    for entry in expand_local(config):
        name, overrides = arm_overrides(entry)
        if name in ADAPT_ARMS and config.train.method is not None:
            overrides = {**overrides, "train.method": None}  # the arm's method is its adapt.method alone
        if name == "source" and entry == "source" and is_meta_learned(config):
            # the control of a meta-learned model: supervised pretraining on source.manifest's labels
            overrides = {**overrides, "source.task": "classification"}
        arm_config = config.derive(overrides, where=f"arm '{name}'", check_paths=check_paths)
        if name == arms[0].name and arm_config == config:  # e.g. compare: [scratch] once model.pretrained: none
            log.warning("compare arm '%s' is the main arm itself (the same settings); it runs once", name)
            continue
        if name == TUNED_ARM and config.tune is not None:
            raise ConfigError(f"arm name '{TUNED_ARM}' is the arm medtl tune adds (the searched main arm); give "
                              "this compare arm another name")
        if name in {a.name for a in arms}:
            raise ConfigError(f"arm name '{name}' appears twice (the main arm is '{arms[0].name}'); give extra "
                              "arms distinct names")
        if name == "erm" and config.method_name == "erm":
            raise ConfigError(f"arm 'erm' is plain fine-tuning, which the main arm '{arms[0].name}' already is "
                              "(adapt.method: none); remove it from compare")
        arms.append(Arm(name, arm_config, False, overrides))
    if config.method_name != "erm" and not any(_is_control(a) for a in arms):
        # a method is only ever reported against plain fine-tuning on the same folds: the control is added
        overrides = {"adapt.method": "none", **({"train.method": None} if config.train.method is not None else {})}
        control = POOLED_ARM if config.train.method in FEDERATED else "erm"
        arms.append(Arm(control, config.derive(overrides, where=f"arm '{control}'", check_paths=check_paths), True,
                        overrides))
    arms += single_task_arms(config, arms, check_paths)
    arms += label_fraction_arms(config, arms, check_paths)
    return arms + seed_arms(config, arms, check_paths)


def single_task_arm_name(task: str) -> str:
    """The control arm that trains task ``task`` alone: ``nodule`` -> ``nodule-only``."""
    return f"{task}-only"


def single_task_arms(config: Config, arms: list[Arm], check_paths: bool = True) -> list[Arm]:
    """``task: multitask``: each task trained alone (same encoder, starting weights, folds and settings) as the
    control its multi-task result is compared with; ``multitask.controls: false`` leaves them out."""
    if len(config.tasks) < 2 or not config.multitask.controls:
        return []
    out = []
    for spec in config.tasks:
        name = single_task_arm_name(spec.name)
        if name in {a.name for a in arms}:
            raise ConfigError(f"arm name '{name}' is the single-task control of task '{spec.name}'; rename that "
                              "compare arm")
        overrides = {"tasks": [{**spec.model_dump(), "weight": 1.0}], "multitask.weighting": "equal"}
        out.append(Arm(name, config.derive(overrides, where=f"arm '{name}'", check_paths=check_paths), True,
                       overrides))
    return out


def fraction_arm_name(arm: str, fraction: float) -> str:
    """``scratch`` at 25% of the labels -> ``scratch.frac0.25``."""
    return f"{arm}.frac{fraction:g}"


def label_fraction_arms(config: Config, arms: list[Arm], check_paths: bool = True) -> list[Arm]:
    """``cv.label_fractions``: every arm again at each share of labelled training patients below 1."""
    fractions = [f for f in config.cv.label_fractions if f < 1]
    if fractions and config.train.label_fraction != 1:
        raise ConfigError(f"train.label_fraction = {config.train.label_fraction} and cv.label_fractions both set the "
                          "share of labelled patients; use cv.label_fractions only")
    return _variant_arms(config, arms, "train.label_fraction", fractions, fraction_arm_name, check_paths)


def _variant_arms(config: Config, arms: list[Arm], key: str, values, name_of, check_paths: bool) -> list[Arm]:
    """Every arm again with ``key`` set to each of ``values`` (named ``name_of(arm, value)``), value by value."""
    out = []
    for value in values:
        for arm in arms:
            overrides = {**arm.overrides, key: value}
            name = name_of(arm.name, value)
            out.append(Arm(name, config.derive(overrides, where=f"arm '{name}'", check_paths=check_paths),
                           arm.required, overrides))
    return out


def seed_arm_name(arm: str, replicate: int) -> str:
    """``scratch`` trained with its second seed -> ``scratch.seed1``."""
    return f"{arm}.seed{replicate}"


def seed_arms(config: Config, arms: list[Arm], check_paths: bool = True) -> list[Arm]:
    """``cv.seeds``: every arm trained again with other seeds (``train.replicate`` 1..N-1) on the same folds; the
    results are merged back into the arm (``medtl.workflows.cv_seeds``)."""
    return _variant_arms(config, arms, "train.replicate", range(1, config.cv.seeds), seed_arm_name, check_paths)


def base_of_seed_arm(name: str) -> tuple[str, int]:
    """``scratch.seed2`` -> ``("scratch", 2)``; an arm of its own -> ``(name, 0)``."""
    head, _, tail = name.rpartition(".seed")
    return (head, int(tail)) if head and tail.isdigit() else (name, 0)


def control_arm(arms: list[Arm]) -> str | None:
    """The plain fine-tuning (ERM) arm that other training methods are compared with (``None``: every arm is
    plain fine-tuning)."""
    if all(a.config.method_name == "erm" for a in arms):
        return None
    return next((a.name for a in arms if _is_control(a)), next(a.name for a in arms if a.config.method_name == "erm"))


def _is_control(arm: Arm) -> bool:
    """Plain training on every training patient (not a ``local-<site>`` arm, which sees one site only)."""
    return arm.config.method_name == "erm" and arm.config.train.only_site is None


def comparison_pairs(arms: list[Arm]) -> list[tuple[str, str]]:
    """``(a, b)`` of every comparison, among arms of the same share of labelled patients.

    An adaptation arm is compared with its plain fine-tuning control; with label-efficiency
    curves (``cv.label_fractions``) every other arm with the from-scratch arm at the same
    share; otherwise the main arm with each other arm. So a positive difference means
    "the method, the pretraining, or the main arm's choice helped".
    """
    if not arms:
        return []
    curves = bool(arms[0].config.cv.label_fractions)
    pairs = []
    for fraction in sorted({a.config.train.label_fraction for a in arms}, reverse=True):
        group = [a for a in arms if a.config.train.label_fraction == fraction]
        control = control_arm(group)
        reference = next((a.name for a in group if a.config.model.pretrained == "none" and
                          a.config.adapt.method == "none"), None) if curves else None
        meta = next((a.name for a in group if is_meta_learned(a.config)), None)
        supervised = next((a.name for a in group if is_supervised_source(a.config)), None)
        if curves and meta and supervised:  # meta-learning vs supervised pretraining on the same source data
            pairs.append((meta, supervised))
        for arm in group:
            if arm.config.method_name != "erm" and control and arm.name != control:
                pairs.append((arm.name, control))
            elif reference is not None and arm.name != reference:
                pairs.append((arm.name, reference))
            elif reference is None and arm is not group[0]:
                pairs.append((group[0].name, arm.name))
        for arm in group:  # DP-SGD's cost: each private arm against the same arm trained without DP
            if arm.config.privacy.dp:
                public = arm.config.derive({"privacy.dp": False}, where=f"arm '{arm.name}' without DP",
                                           check_paths=False)
                twin = next((a.name for a in group if a.config == public), None)
                if twin is not None:
                    pairs.append((twin, arm.name))
    return list(dict.fromkeys(pairs))  # a control that is also the main arm's first partner: once
