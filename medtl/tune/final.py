"""The parameters for a final model: one value per searched key from the outer folds' choices."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from ..config.tune import Distribution


def final_parameters(space: dict[str, Distribution], chosen: list[dict[str, Any]]) -> tuple[dict, dict]:
    """``(values, rules)``: per key the most frequent choice (a tie goes to the value listed first in the space),
    the median of an integer range (rounded), the median of a uniform range, or the geometric median of a
    log-uniform one, over the outer folds' chosen values; ``rules`` says which rule gave each value."""
    values, rules = {}, {}
    for key, dim in space.items():
        picks = [c[key] for c in chosen]
        if dim.kind == "choice":
            counts = Counter(repr(p) for p in picks)
            top = max(counts.values())
            values[key] = next(v for v in dim.choice if counts.get(repr(v)) == top)
            rules[key] = f"most frequent choice ({top} of {len(picks)} outer folds)"
        elif dim.kind == "int":
            values[key] = int(round(float(np.median(picks))))
            rules[key] = f"median of {len(picks)} outer folds' choices, rounded"
        elif dim.kind == "log_uniform":
            values[key] = float(math.exp(np.median(np.log(picks))))
            rules[key] = f"geometric median of {len(picks)} outer folds' choices"
        else:
            values[key] = float(np.median(picks))
            rules[key] = f"median of {len(picks)} outer folds' choices"
    return values, rules


def differing_keys(space: dict[str, Distribution], chosen: list[dict[str, Any]]) -> list[str]:
    """The keys whose chosen value is not the same in every outer fold."""
    return [key for key in space if len({repr(c[key]) for c in chosen}) > 1]
