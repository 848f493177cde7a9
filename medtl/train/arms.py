"""Experiment arms: the configured model plus each ``compare`` entry, trained on the same folds."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ArmConfig, Config, apply_overrides
from ..errors import ConfigError

STRATEGY_ARMS = ("linear", "full", "gradual", "discriminative")
SOURCE_ARMS = ("imagenet", "medicalnet", "source")


@dataclass
class Arm:
    name: str
    config: Config
    required: bool  # the main arm must run; an extra arm whose weights are unavailable is skipped, visibly


def main_arm_name(config: Config) -> str:
    return "scratch" if config.model.pretrained == "none" else "pretrained"


def _overrides_for(entry: str | ArmConfig) -> tuple[str, dict]:
    if isinstance(entry, ArmConfig):
        return entry.name, dict(entry.set)
    if entry == "scratch":
        return "scratch", {"model.pretrained": "none"}
    if entry in SOURCE_ARMS:
        return entry, {"model.pretrained": entry}
    if entry in STRATEGY_ARMS:
        return entry, {"finetune.strategy": entry}
    raise ConfigError(f"unknown arm '{entry}' in compare; use scratch, {', '.join(SOURCE_ARMS + STRATEGY_ARMS)}, "
                      "or {name: ..., set: {key: value}}")


def resolve_arms(config: Config) -> list[Arm]:
    """Main arm first, then each extra arm with its overrides applied."""
    arms = [Arm(main_arm_name(config), config, True)]
    base = config.model_dump(mode="json")
    base["compare"] = []
    for entry in config.compare:
        name, overrides = _overrides_for(entry)
        if name in {a.name for a in arms}:
            raise ConfigError(f"arm name '{name}' appears twice; give extra arms distinct names")
        raw = apply_overrides(dict(base), [f"{k}={v}" for k, v in overrides.items()])
        try:
            arm_config = Config.model_validate(raw)
        except Exception as exc:  # pydantic ValidationError: report it against the arm
            raise ConfigError(f"arm '{name}': invalid overrides {overrides}: {exc}") from exc
        arms.append(Arm(name, arm_config, False))
    return arms
