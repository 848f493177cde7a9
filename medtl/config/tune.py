"""``tune``: a hyper-parameter search by nested cross-validation (``medtl tune``, docs/tune.md).

The search space maps any config key to one typed distribution:

```yaml
tune:
  space:
    train.lr: {log_uniform: [1.0e-5, 1.0e-2]}
    finetune.strategy: {choice: [linear, full]}
    train.epochs: {int: [5, 30]}
```

Whether a key exists, whether its type takes every value of the distribution and
whether a range is empty is checked against the whole config (``check_search_space``)
when the config loads, before anything runs.
"""

from __future__ import annotations

import builtins
import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Section

# keys a search may not touch: they define the data, the folds, the search itself or where work runs
UNTUNABLE = ("data.manifest", "cv.", "tune", "compare", "run.", "track", "tracking.", "card.", "source.manifest",
             "adapt.target_manifest", "ssl.probe_manifest", "task")


class Distribution(Section):
    """One dimension of the search space: exactly one of ``log_uniform``, ``uniform``, ``int``, ``choice``."""

    log_uniform: tuple[float, float] | None = None  # [low, high], both > 0, sampled on a log scale
    uniform: tuple[float, float] | None = None  # [low, high]
    int: tuple[builtins.int, builtins.int] | None = None  # [low, high], both included
    choice: list[Any] | None = None  # the values tried (numbers, strings, booleans, null)

    @model_validator(mode="after")
    def _one_kind(self) -> "Distribution":
        given = [k for k in ("log_uniform", "uniform", "int", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a search dimension is exactly one of {log_uniform: [low, high]}, {uniform: [low, high]}, "
                             f"{{int: [low, high]}}, {{choice: [a, b, ...]}}; got {given or 'none'}")
        kind = given[0]
        if kind == "choice":
            if len(self.choice) < 2:
                raise ValueError(f"choice {self.choice} has fewer than two values: nothing to choose")
            if len({repr(v) for v in self.choice}) != len(self.choice):
                raise ValueError(f"choice {self.choice} repeats a value")
            return self
        low, high = getattr(self, kind)
        if not low < high:
            raise ValueError(f"{kind} range [{low}, {high}] is empty: the low end must be below the high end")
        if kind == "log_uniform" and low <= 0:
            raise ValueError(f"log_uniform range [{low}, {high}] must be above 0 (a log scale)")
        return self

    @property
    def kind(self) -> str:
        """``log_uniform``, ``uniform``, ``int`` or ``choice``."""
        return next(k for k in ("log_uniform", "uniform", "int", "choice") if getattr(self, k) is not None)

    def probes(self) -> list[Any]:
        """The values whose acceptance by the config proves every value is acceptable (ends, or every choice)."""
        if self.kind == "choice":
            return list(self.choice)
        low, high = getattr(self, self.kind)
        middle = math.sqrt(low * high) if self.kind == "log_uniform" else (low + high) / 2
        return [low, int(round(middle)) if self.kind == "int" else middle, high]

    @property
    def grid(self) -> list[Any] | None:
        """Every value of a discrete dimension (``choice``, ``int``); ``None`` for a continuous one."""
        if self.kind == "choice":
            return list(self.choice)
        if self.kind == "int":
            return list(range(self.int[0], self.int[1] + 1))
        return None


class TuneConfig(Section):
    """``tune``: nested cross-validation of a hyper-parameter search (docs/tune.md)."""

    space: dict[str, Distribution] = Field(min_length=1)  # config key -> distribution
    trials: int = Field(20, ge=1, le=10_000)  # per outer fold
    inner_folds: int = Field(3, ge=2)  # patient-grouped folds of each outer fold's training patients
    metric: str | None = None  # default: the task's primary metric (AUC, Dice)
    direction: Literal["maximize", "minimize"] | None = None  # default: minimize for losses and distances
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    startup_trials: int = Field(10, ge=1)  # tpe: random trials before the model of good and bad settings is used
    pruning: bool = False  # stop a trial whose running inner-fold mean is worse than the median of finished trials
    seed: int | None = None  # default: train.seed
    timeout: float | None = Field(None, gt=0)  # seconds per outer fold: no new trial starts after it
    parallel: int = Field(1, ge=1, le=256)  # trials asked together; run.executor runs them side by side
    arms: list[str] = Field(default_factory=list)  # compare arms searched the same way (each as <arm>-tuned)

    @field_validator("space")
    @classmethod
    def _check_keys(cls, value: dict[str, Distribution]) -> dict[str, Distribution]:
        for key in value:
            if key.startswith(UNTUNABLE):
                raise ValueError(f"tune.space key '{key}' cannot be searched: it defines the data, the folds, the "
                                 "search or where work runs (searchable: model., finetune., train., data. "
                                 "preprocessing and augmentation, adapt., ...)")
        return value
