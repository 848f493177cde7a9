"""Multi-task: one encoder, a classification head per classification task and one segmentation decoder.

Every per-task question (loss, row, metric, report section) is answered by the task's
own ``ClassificationTask`` or ``SegmentationTask`` on that task's view of a case, so a
multi-task number means exactly what the single-task number means. Out-of-fold rows are
one per (case, task with a target), carrying a ``task`` column; a case lacking a task's
target has no row for it and is never scored on it.

Class names and class counts are per task: ``{task: [names]}`` and ``{task: count}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .base import Task
from .segmentation import had_foreground, lost_foreground


@dataclass
class TaskView:
    """One task's view of a prepared case: ``label`` (that task's class index or ``None``), ``mask``, ``spacing``."""

    case: Any
    label: int | None
    mask: Any

    @property
    def spacing(self):
        return self.case.spacing

    @property
    def image(self):
        return self.case.image

    @property
    def case_id(self) -> str:
        return self.case.case_id

    @property
    def had_foreground(self) -> bool:
        return self.mask is not None and had_foreground(self.case)

    @property
    def lost_foreground(self) -> bool:
        return self.mask is not None and lost_foreground(self.case)


def task_rows(rows: Sequence[dict], name: str) -> list[dict]:
    """The rows of one task."""
    return [r for r in rows if r.get("task") == name]


def task_folds(records: Sequence[dict], name: str) -> list[dict]:
    """Fold records with one task's metrics under their plain names (``nodule.auc`` -> ``auc``)."""
    prefix = f"{name}."
    out = []
    for record in records:
        plain = {k: v for k, v in record.items() if "." not in k}
        plain.update({k[len(prefix):]: v for k, v in record.items() if k.startswith(prefix)})
        out.append(plain)
    return out


class MultiTask(Task):
    """Several tasks on one encoder; built from the config's ``tasks`` and ``multitask`` sections."""

    name = "multitask"
    is_composite = True
    head_description = "one head per task on the shared encoder"
    head = "multitask"
    target_column = ""
    row_key_columns = ("task",)

    def __init__(self, specs: Sequence, weighting: str = "equal"):
        from . import get_task

        self.specs = list(specs)
        self.weighting = weighting
        self.tasks = {spec.name: get_task(spec.kind) for spec in self.specs}
        self.kinds = {spec.name: spec.kind for spec in self.specs}
        first = self.specs[0].name
        self.primary_task = first
        self.primary_metric = f"{first}.{self.tasks[first].primary_metric}"
        self.metric_names = tuple(f"{n}.{m}" for n, t in self.tasks.items() for m in t.metric_names)
        self.uses_mask = any(t.uses_mask for t in self.tasks.values())
        self.needs_all_classes_per_fold = False  # a fold may lack a task's class: that task's AUC is then undefined

    def __repr__(self) -> str:
        return f"<task multitask {list(self.tasks)}>"

    @property
    def segmentation_task(self) -> str | None:
        """The name of the segmentation task, if there is one."""
        return next((n for n, kind in self.kinds.items() if kind == "segmentation"), None)

    def view(self, case: Any, name: str) -> TaskView:
        """``case`` as task ``name`` sees it (its label, or the mask for the segmentation task)."""
        if self.kinds[name] == "classification":
            return TaskView(case, (getattr(case, "labels", None) or {}).get(name), None)
        return TaskView(case, None, case.mask)

    def has_target(self, case: Any, name: str) -> bool:
        """Whether ``case`` carries task ``name``'s target."""
        view = self.view(case, name)
        return view.label is not None if self.kinds[name] == "classification" else view.mask is not None

    # --- training ----------------------------------------------------------------------------------------

    def num_classes(self, class_names: dict, cases: Sequence[Any]) -> dict[str, int]:
        return {name: task.num_classes(class_names[name], [self.view(c, name) for c in cases
                                                           if self.has_target(c, name)])
                for name, task in self.tasks.items()}

    def stratum(self, case: Any) -> int:
        """Folds are stratified on the first task's target; a case without it is its own stratum (-1)."""
        name = self.primary_task
        return self.tasks[name].stratum(self.view(case, name)) if self.has_target(case, name) else -1

    def loss(self, kind: str, class_weights=None, weights: dict[str, float] | None = None) -> Callable:
        from .multitask_loss import MultiTaskLoss

        losses = {name: task.loss(kind) for name, task in self.tasks.items()}
        return MultiTaskLoss(losses, self.weighting, weights or {s.name: s.weight for s in self.specs})

    def loss_parameters(self, loss) -> list:
        return list(loss.parameters())

    def loss_facts(self, loss) -> dict[str, float]:
        return loss.epoch_facts()

    def target_fingerprint(self, case: Any) -> str:
        """The label of every classification task (the mask is in the content hash), e.g. ``nodule=1,side=None``."""
        labels = getattr(case, "labels", None) or {}
        return ",".join(f"{name}={labels.get(name)}" for name in self.tasks if self.tasks[name].uses_label)

    def preparation_warnings(self, cases: Sequence[Any]) -> list[str]:
        return [f"task {name}: {warning}" for name, task in self.tasks.items()
                for warning in task.preparation_warnings([self.view(c, name) for c in cases
                                                          if self.has_target(c, name)])]

    def heads(self, class_names: dict, num_classes: dict) -> dict:
        return {name: (task, class_names[name], num_classes[name]) for name, task in self.tasks.items()}

    def prediction_columns(self, class_names: dict, truth: bool, explain: bool, explained: str | None = None
                           ) -> list[str]:
        """Each task's head columns, prefixed with its name (``nodule.prob_1``, ``lesion.mask_file``)."""
        return [f"{name}.{column}" for name, task in self.tasks.items()
                for column in task.head_columns(class_names[name], truth, explain and name == explained)]

    def prediction_values(self, record: dict, class_names: dict, truth: bool) -> dict:
        return {f"{name}.{k}": v for name, task in self.tasks.items()
                for k, v in task.head_values(record["tasks"][name], class_names[name], truth).items()}

    def _not_one_head(self, *args, **kwargs):
        raise TypeError("a multi-task model is not one head: ask each of its tasks (heads())")

    head_columns = head_values = external_row = _not_one_head

    def outputs(self, logits: dict) -> list[dict[str, np.ndarray]]:
        """Per case: ``{task: class probabilities or label map}``."""
        import torch

        per_task = {name: task.network_output(torch.softmax(logits[name].float(), dim=1)).cpu().numpy()
                    for name, task in self.tasks.items()}
        return [{name: values[i] for name, values in per_task.items()} for i in range(len(next(iter(per_task.values()))))]

    def checkpoint_class_names(self, class_names: dict) -> None:
        return None

    # --- per-case rows and metrics -----------------------------------------------------------------------

    def case_rows(self, case: Any, output: dict, class_names: dict, num_classes: dict) -> list[dict]:
        return [{"task": name, **task.case_row(self.view(case, name), output[name], class_names[name],
                                               num_classes[name])}
                for name, task in self.tasks.items() if self.has_target(case, name)]

    def case_row(self, case: Any, output: dict, class_names: dict, num_classes: dict) -> dict:
        raise TypeError("a multitask case has one row per task: use case_rows")

    def case_columns(self, class_names: dict, rows: Sequence[dict]) -> list[str]:
        """Each task's own columns (a calibrated classification task adds ``raw_prob_*`` and the prediction set)."""
        columns: list[str] = []
        for name, task in self.tasks.items():
            columns += [c for c in task.case_columns(class_names[name], task_rows(rows, name)) if c not in columns]
        return columns

    def result_columns(self, class_names: dict) -> list[str]:
        columns: list[str] = []
        for name, task in self.tasks.items():
            columns += [c for c in task.result_columns(class_names[name]) if c not in columns]
        return columns

    def fold_metrics(self, rows: Sequence[dict], class_names: dict) -> dict[str, float]:
        out = {}
        for name, task in self.tasks.items():
            mine = task_rows(rows, name)
            values = task.fold_metrics(mine, class_names[name]) if mine else {m: math.nan for m in task.metric_names}
            out.update({f"{name}.{m}": v for m, v in values.items()})
        return out

    def pooled_statistic(self, metric: str, rows: Sequence[dict], class_names: dict):
        name, plain = metric.split(".", 1)
        positions = {i: k for k, i in enumerate(i for i, r in enumerate(rows) if r.get("task") == name)}
        statistic = self.tasks[name].pooled_statistic(plain, task_rows(rows, name), class_names[name])
        return lambda idx: statistic(np.array([positions[i] for i in idx if i in positions], dtype=int))

    def averaged_columns(self, class_names: dict) -> list[str]:
        return self.result_columns(class_names)

    def average_rows(self, rows: Sequence[dict], class_names: dict) -> list[dict]:
        return [row for name, task in self.tasks.items()
                for row in task.average_rows(task_rows(rows, name), class_names[name])]

    def arm_warnings(self, arm: str, rows: Sequence[dict]) -> list[str]:
        return [f"task '{name}': {warning}" for name, task in self.tasks.items()
                for warning in task.arm_warnings(arm, task_rows(rows, name))]

    def overlay_cases(self, cases: Sequence[Any]) -> list[int]:
        name = self.segmentation_task
        if name is None:
            return []
        with_mask = [i for i, c in enumerate(cases) if c.mask is not None]
        chosen = self.tasks[name].overlay_cases([cases[i] for i in with_mask])
        return [with_mask[i] for i in chosen]

    def save_overlays(self, path, cases: Sequence[Any], outputs: dict[int, dict]) -> None:
        name = self.segmentation_task
        if name is not None:
            self.tasks[name].save_overlays(path, cases, {i: out[name] for i, out in outputs.items()})

    # --- reports -----------------------------------------------------------------------------------------

    def data_counts(self, cases: Sequence[Any], class_names: dict) -> dict[str, int]:
        counts = {}
        for name, task in self.tasks.items():
            views = [self.view(c, name) for c in cases if self.has_target(c, name)]
            counts[f"{name}: cases with a target"] = len(views)
            counts[f"{name}: cases without (not trained or scored on it)"] = len(cases) - len(views)
            counts.update({f"{name}: {k}": v for k, v in task.data_counts(views, class_names[name]).items()})
        return counts

    def report_sections(self, arm_rows, class_names, figures, overlays) -> list[tuple[str, str]]:
        sections = []
        for name, task in self.tasks.items():
            rows = {arm: task_rows(r, name) for arm, r in arm_rows.items() if task_rows(r, name)}
            sections += [(f"{name}: {title}", body)
                         for title, body in task.report_sections(rows, class_names[name], figures, overlays)]
        return sections

    def external_sections(self, rows, member_rows, class_names, figures) -> list[tuple[str, str]]:
        sections = []
        for name, task in self.tasks.items():
            mine = task_rows(rows, name)
            if mine:
                members = {m: task_rows(r, name) for m, r in member_rows.items()}
                sections += [(f"{name}: {title}", body)
                             for title, body in task.external_sections(mine, members, class_names[name], figures)]
        return sections
