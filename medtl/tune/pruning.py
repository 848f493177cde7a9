"""``tune.pruning``: Optuna's median rule on the running mean of a trial's inner folds.

A trial is stopped after inner fold ``k`` (not the last) when the mean of its first
``k + 1`` fold scores is worse than the median of the same running mean over the trials
that had finished (``COMPLETE``) when it was asked, once at least ``startup`` trials had
(Optuna's ``MedianPruner`` with ``n_startup_trials=5``, ``n_warmup_steps=0``). The
thresholds are fixed when a trial is asked, so a trial's fate does not depend on which
trials happen to finish beside it on a cluster: a parallel search prunes exactly as the
same search run one trial at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STARTUP_TRIALS = 5


@dataclass(frozen=True)
class MedianRule:
    """Per inner-fold step the median running mean of finished trials (empty: no pruning yet)."""

    direction: str
    thresholds: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_finished(cls, direction: str, curves: list[list[float]]) -> "MedianRule":
        """The rule given the running-mean curves of the finished trials (fewer than 5: a rule that never prunes)."""
        if len(curves) < STARTUP_TRIALS:
            return cls(direction)
        steps = max(len(c) for c in curves)
        thresholds = {}
        for step in range(steps):
            values = [c[step] for c in curves if len(c) > step and np.isfinite(c[step])]
            if values:
                thresholds[step] = float(np.median(values))
        return cls(direction, thresholds)

    def prunes(self, step: int, running_mean: float) -> bool:
        """Stop the trial after ``step`` with this running mean (an undefined mean is never pruned)."""
        threshold = self.thresholds.get(step)
        if threshold is None or not np.isfinite(running_mean):
            return False
        return running_mean < threshold if self.direction == "maximize" else running_mean > threshold


def running_means(scores: list[float]) -> list[float]:
    """The mean of the first 1, 2, ... fold scores."""
    return [float(np.mean(scores[:k + 1])) for k in range(len(scores))]
