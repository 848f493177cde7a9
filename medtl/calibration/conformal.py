"""Split conformal prediction sets for classification, class-conditional (Mondrian) by default.

Scores (higher = less conforming):

- ``lac``: ``1 - p(y)`` (least ambiguous set-valued classifier; the smallest sets);
- ``aps``: the total probability of the classes ranked at or above ``y`` (adaptive sets;
  non-randomised, so coverage is at least, not exactly, the target).

With ``n`` calibration scores, the threshold is the ``ceil((n + 1)(1 - alpha))``-th smallest;
a test set holds every class whose score is at or below it. Under exchangeability of the
calibration and test cases, ``P(y in set) >= 1 - alpha``. Mondrian: one threshold per true
class (each from that class's calibration cases), so the guarantee holds for every class,
not only on average (a minority class is not sacrificed). ``by="site"``: one threshold per
site instead. A group with too few cases for its threshold (``ceil((n+1)(1-alpha)) > n``)
gets an infinite one: its classes are in every set, and the fit says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SCORES = ("lac", "aps")


def class_scores(probabilities: np.ndarray, score: str) -> np.ndarray:
    """The non-conformity score of every (case, class) pair, shape (n, C)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if score == "lac":
        return 1.0 - probabilities
    if score == "aps":
        order = np.argsort(-probabilities, axis=1, kind="stable")
        cumulative = np.cumsum(np.take_along_axis(probabilities, order, axis=1), axis=1)
        out = np.empty_like(probabilities)
        np.put_along_axis(out, order, cumulative, axis=1)
        return out
    raise ValueError(f"conformal score {score!r}: use one of {SCORES}")


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ``ceil((n + 1)(1 - alpha))``-th smallest of ``scores`` (``inf`` when that rank exceeds ``n``)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil(round((len(scores) + 1) * (1 - alpha), 9))  # 20 * 0.95 is 19.000000000000004 in floats
    return float(scores[rank - 1]) if 1 <= rank <= len(scores) else math.inf


@dataclass
class ConformalSets:
    """Fitted thresholds: per true class (``by="class"``), per site (``by="site"``) or one (``by="none"``)."""

    alpha: float
    score: str
    by: str
    thresholds: dict[str, float]  # group -> threshold ("*" when by="none")
    counts: dict[str, int] = field(default_factory=dict)  # calibration cases per group

    def sets(self, probabilities: np.ndarray, sites: list[str] | None = None) -> list[list[int]]:
        """The class indices in each case's prediction set."""
        scores = class_scores(probabilities, self.score)
        classes = scores.shape[1]
        out = []
        for i in range(len(scores)):
            if self.by == "class":
                limits = [self.thresholds.get(str(k), math.inf) for k in range(classes)]
            else:
                group = "*" if self.by == "none" else (sites[i] if sites else "")
                limits = [self.thresholds.get(group, math.inf)] * classes
            out.append([k for k in range(classes) if scores[i, k] <= limits[k]])
        return out

    @property
    def notes(self) -> list[str]:
        """Groups whose calibration cases were too few for a finite threshold."""
        few = [g for g, t in self.thresholds.items() if math.isinf(t)]
        need = math.ceil(1 / self.alpha) - 1
        return [f"conformal: too few calibration cases for {'class' if self.by == 'class' else 'group'} {g} "
                f"({self.counts.get(g, 0)}; at least {need} are needed at alpha {self.alpha}): it is in every "
                "prediction set" for g in few]

    def to_dict(self) -> dict:
        """JSON form (``inf`` as null)."""
        return {"alpha": self.alpha, "score": self.score, "by": self.by, "counts": self.counts,
                "thresholds": {g: (None if math.isinf(t) else t) for g, t in self.thresholds.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "ConformalSets":
        """Read ``to_dict``'s form."""
        return cls(data["alpha"], data["score"], data["by"],
                   {g: (math.inf if t is None else float(t)) for g, t in data["thresholds"].items()},
                   dict(data.get("counts", {})))


def fit_conformal(labels: np.ndarray, probabilities: np.ndarray, alpha: float, score: str = "lac",
                  by: str = "class", sites: list[str] | None = None) -> ConformalSets:
    """Thresholds from calibration cases (never the cases the sets will be scored on)."""
    labels = np.asarray(labels, dtype=int)
    true_scores = class_scores(probabilities, score)[np.arange(len(labels)), labels]
    if by == "class":
        groups = [str(k) for k in labels]
        names = [str(k) for k in range(np.asarray(probabilities).shape[1])]
    elif by == "site":
        groups, names = list(sites or [""] * len(labels)), sorted(set(sites or [""]))
    else:
        groups, names = ["*"] * len(labels), ["*"]
    thresholds, counts = {}, {}
    for name in names:
        chosen = true_scores[[g == name for g in groups]] if len(groups) else np.array([])
        thresholds[name], counts[name] = conformal_quantile(chosen, alpha), int(len(chosen))
    return ConformalSets(alpha, score, by, thresholds, counts)
