"""Dotted keys: ``--set a.b=value`` parsing, setting a dotted key in a raw config, flattening for diffs."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from ..errors import ConfigError


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


def flatten(config: BaseModel) -> dict[str, Any]:
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


def config_differences(old: BaseModel, new: BaseModel) -> list[str]:
    """The dotted keys whose values differ between two configs, sorted."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
