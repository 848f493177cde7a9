"""The ``tune.space`` of a config as Optuna distributions, and sampled values back as config values."""

from __future__ import annotations

import json
from typing import Any

from ..config.tune import Distribution

_PLAIN = (str, int, float, bool, type(None))


def _encoded(value: Any) -> Any:
    """A choice as Optuna stores it: plain values as they are, a list or mapping as its JSON text."""
    return value if isinstance(value, _PLAIN) else json.dumps(value, sort_keys=True)


def optuna_distributions(space: dict[str, Distribution]) -> dict:
    """``{key: optuna distribution}`` of the search space."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for key, dim in space.items():
        if dim.kind == "choice":
            out[key] = CategoricalDistribution([_encoded(v) for v in dim.choice])
        elif dim.kind == "int":
            out[key] = IntDistribution(*dim.int)
        else:
            low, high = getattr(dim, dim.kind)
            out[key] = FloatDistribution(low, high, log=dim.kind == "log_uniform")
    return out


def grid_of(space: dict[str, Distribution]) -> dict[str, list]:
    """Every value of every (discrete) dimension, as Optuna's grid sampler takes them."""
    return {key: [_encoded(v) for v in dim.grid] for key, dim in space.items()}


def grid_size(space: dict[str, Distribution]) -> int:
    """How many points a grid search over ``space`` has."""
    size = 1
    for dim in space.values():
        size *= len(dim.grid)
    return size


def decode_params(space: dict[str, Distribution], params: dict[str, Any]) -> dict[str, Any]:
    """Sampled values as config values (a JSON-encoded choice back to its list or mapping), in the space's order."""
    out = {}
    for key, dim in space.items():
        value = params[key]
        if dim.kind == "choice":
            value = next(v for v in dim.choice if _encoded(v) == value)
        out[key] = value
    return out
