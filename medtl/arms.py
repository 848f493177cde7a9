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
NAMED_ARMS = ("scratch", *SOURCE_ARMS, *STRATEGY_ARMS)


@dataclass(frozen=True)
class Arm:
    """One arm: its name, its resolved config and the overrides that made it from the main config."""

    name: str
    config: Config
    required: bool  # the main arm must run; an extra arm whose weights are unavailable is skipped, visibly
    overrides: dict[str, Any] = field(default_factory=dict)


def main_arm_name(config: Config) -> str:
    """A name that says where the main model starts: ``scratch``, ``imagenet-pretrained``,
    ``medicalnet-pretrained``, ``source-pretrained`` or ``checkpoint-pretrained``."""
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
        arms.append(Arm(name, arm_config, False, overrides))
    return arms
