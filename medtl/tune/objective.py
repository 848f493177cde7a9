"""What a search optimises: one metric of the task (its primary metric unless ``tune.metric`` says otherwise),
read from a fold's record or computed from out-of-fold rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnknownNameError
from ..tasks import task_of
from ..tasks.multitask import task_rows

# metrics where lower is better: a search over them minimises
LOWER_IS_BETTER = ("hd95", "brier", "ece", "loss", "nll", "log_loss")


@dataclass(frozen=True)
class Objective:
    """The metric a search optimises, its direction, and the task (or multi-task head) that reports it."""

    metric: str
    direction: str  # maximize | minimize
    head: str  # "" for a single task, else the primary task of a multi-task model

    def better(self, a: float, b: float) -> bool:
        """``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b

    def score(self, record: dict) -> float:
        """The metric in one fold's record."""
        return float(record[f"{self.head}.{self.metric}" if self.head else self.metric])

    def statistic(self, config, rows: list[dict], class_names):
        """``(statistic, patient keys)`` of the out-of-fold rows this objective scores: ``statistic(indices)`` is the
        mean over the rows' folds of the metric on each fold's rows (the score a search ranks trials by; a single
        fold: its metric), for patient-bootstrap intervals (a patient lies in one fold)."""
        task = task_of(config)
        names = class_names
        if self.head:
            rows = task_rows(rows, self.head)
            names = class_names[self.head]
            task = task.tasks[self.head]
        rows = task.average_rows(rows, names)
        keys = [(int(r.get("repeat", 0)), int(r.get("fold", 0))) for r in rows]
        order = sorted(set(keys))
        fold_of = np.asarray([order.index(k) for k in keys], dtype=int)
        members = [np.flatnonzero(fold_of == f) for f in range(len(order))]
        local = np.zeros(len(rows), dtype=int)  # a row's position among its fold's rows
        for rows_of_fold in members:
            local[rows_of_fold] = np.arange(len(rows_of_fold))
        per_fold = [task.pooled_statistic(self.metric, [rows[i] for i in m], names) for m in members]

        def statistic(indices):
            chosen = np.asarray(indices, dtype=int)
            values = []
            for fold, fold_statistic in enumerate(per_fold):
                picked = chosen[fold_of[chosen] == fold]
                if len(picked) == 0:
                    return float("nan")
                values.append(fold_statistic(local[picked]))
            return float(np.mean(values))

        return statistic, [r["patient_key"] for r in rows]


def objective_of(config) -> Objective:
    """The objective of ``config.tune``: a ``tune.metric`` the task does not report is an error with a did-you-mean."""
    import difflib

    task = task_of(config)
    head = task.primary_task if task.is_composite else ""
    spec = task.tasks[head] if head else task
    metric = config.tune.metric or spec.primary_metric
    if metric not in spec.metric_names:
        close = difflib.get_close_matches(metric, spec.metric_names, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UnknownNameError(f"tune.metric '{metric}' is not a metric of this task; {hint}use one of "
                               f"{', '.join(spec.metric_names)}")
    direction = config.tune.direction or ("minimize" if metric in LOWER_IS_BETTER else "maximize")
    return Objective(metric, direction, head)
