"""Experiment arms: the configured model plus each ``compare`` entry, trained on the same folds.

Each arm's config is derived from the *main* config with ``Config.derive`` (a deep
copy with typed values), so an arm differs from the main arm exactly by its own
overrides, whatever the order of ``compare``: nothing one arm sets leaks into another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ArmConfig, Config
from .errors import ConfigError, UnknownNameError

STRATEGY_ARMS = ("linear", "full", "gradual", "discriminative")
SOURCE_ARMS = ("imagenet", "medicalnet", "source")
ADAPT_ARMS = ("erm", "dann", "reweight")  # erm: plain fine-tuning, the control of every adaptation method
NAMED_ARMS = ("scratch", *SOURCE_ARMS, *STRATEGY_ARMS, *ADAPT_ARMS)


@dataclass(frozen=True)
class Arm:
    """One arm: its name, its resolved config and the overrides that made it from the main config."""

    name: str
    config: Config
    required: bool  # the main arm must run; an extra arm whose weights are unavailable is skipped, visibly
    overrides: dict[str, Any] = field(default_factory=dict)


def main_arm_name(config: Config) -> str:
    """A name that says where the main model starts: ``scratch``, ``imagenet-pretrained``,
    ``medicalnet-pretrained``, ``source-pretrained`` or ``checkpoint-pretrained``; its
    adaptation method (``dann``, ``reweight``) when it uses one, and ``erm`` when it is the
    plain fine-tuning control of adaptation arms."""
    if config.adapt.method != "none":
        return config.adapt.method
    if any(arm_overrides(entry)[1].get("adapt.method", "none") != "none" for entry in config.compare):
        return "erm"  # the plain fine-tuning control of the adaptation arms
    source = config.model.pretrained
    if source == "none":
        return "scratch"
    return f"{source}-pretrained" if source in SOURCE_ARMS else "checkpoint-pretrained"


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
    import difflib

    close = difflib.get_close_matches(entry, NAMED_ARMS, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UnknownNameError(f"unknown arm '{entry}' in compare; {hint}use {', '.join(NAMED_ARMS)}, "
                           "or {name: ..., set: {key: value}}")


def resolve_arms(config: Config, check_paths: bool = True) -> list[Arm]:
    """Main arm first, then each extra arm derived from the main config by its own overrides."""
    arms = [Arm(main_arm_name(config), config, True)]
    for entry in config.compare:
        name, overrides = arm_overrides(entry)
        if name in {a.name for a in arms}:
            raise ConfigError(f"arm name '{name}' appears twice (the main arm is '{arms[0].name}'); give extra "
                              "arms distinct names")
        arm_config = config.derive(overrides, where=f"arm '{name}'", check_paths=check_paths)
        if name == "erm" and config.adapt.method == "none":
            raise ConfigError(f"arm 'erm' is plain fine-tuning, which the main arm '{arms[0].name}' already is "
                              "(adapt.method: none); remove it from compare")
        arms.append(Arm(name, arm_config, False, overrides))
    if config.adapt.method != "none" and all(a.config.adapt.method != "none" for a in arms):
        # a method is only ever reported against plain fine-tuning on the same folds: the control is added
        overrides = {"adapt.method": "none"}
        arms.append(Arm("erm", config.derive(overrides, where="arm 'erm'", check_paths=check_paths), True, overrides))
    return arms


def control_arm(arms: list[Arm]) -> str | None:
    """The plain fine-tuning (ERM) arm that adaptation arms are compared with (``None``: no arm adapts)."""
    if all(a.config.adapt.method == "none" for a in arms):
        return None
    return next(a.name for a in arms if a.config.adapt.method == "none")
