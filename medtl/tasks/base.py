"""The ``Task`` interface: one object per kind of target, asked wherever behaviour depends on the task."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np


class Task(ABC):
    """What a model is trained to do: the target, the loss, the per-case rows, metrics and report sections.

    Subclasses set the class attributes and implement the abstract methods. Cases are objects with ``label`` (class index or ``None``),
    ``mask`` (label array or ``None``) and ``spacing``; rows are plain dicts.
    """

    name: str = ""
    head: str = ""  # head kind in medtl.models: "classification" or "segmentation"
    target_column: str = ""  # manifest column holding the target
    primary_metric: str = ""
    metric_names: tuple[str, ...] = ()
    uses_mask: bool = False  # targets are masks (loaded and augmented with the image); predictions are label maps
    uses_label: bool = False  # targets are class labels; predictions are class probabilities (explainable)
    needs_all_classes_per_fold: bool = False  # every validation fold must hold every class
    min_classes: int = 1  # distinct labels a training manifest needs
    is_composite: bool = False  # several tasks on one encoder (``MultiTask``): results per task
    row_key_columns: tuple[str, ...] = ()  # extra key columns of an out-of-fold row (multitask: "task")

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # --- training ----------------------------------------------------------------------------------------

    @abstractmethod
    def num_classes(self, class_names: Sequence[str], cases: Sequence[Any]) -> int:
        """Output channels of the head."""

    @abstractmethod
    def stratum(self, case: Any) -> int:
        """The value folds are stratified on."""

    def target_fingerprint(self, case: Any) -> str:
        """Every target of ``case`` this task reads, as text, for the run's data fingerprint (a resume whose
        targets changed is refused). Mask files are in the case's content hash already."""
        return str(case.label)

    def positive_class(self, class_names, configured: str | None) -> dict | None:
        """Which class is "positive" for sensitivity, specificity and F1, in words (``None``: not a binary task)."""
        return None

    def preparation_warnings(self, cases: Sequence[Any]) -> list[str]:
        """What preprocessing did to the targets that the user must know (e.g. lesions lost in a resize)."""
        return []

    def check_cases(self, cases: Sequence[Any], where: str) -> None:
        """Refuse prepared training cases this task cannot learn from (``where`` names the manifest)."""

    def sampling_labels(self, cases: Sequence[Any]) -> list[int] | None:
        """Labels for a class-balanced sampler (``None``: the task has none)."""
        return None

    def class_weights(self, cases: Sequence[Any], num_classes: int, setting: str):
        """Per-class loss weights for ``train.class_weights`` (``None``: unweighted)."""
        return None

    @abstractmethod
    def loss(self, kind: str, class_weights=None) -> Callable:
        """``loss(logits, target)``."""

    def loss_parameters(self, loss) -> list:
        """Parameters of ``loss`` that train with the model (learned loss weights); none by default."""
        return []

    def loss_facts(self, loss) -> dict[str, float]:
        """Facts about ``loss`` after an epoch, for the history (e.g. each task's loss weight); none by default."""
        return {}

    def network_output(self, probabilities):
        """What prediction keeps of the softmax output: probabilities, or a label map."""
        return probabilities

    def outputs(self, logits) -> list:
        """Per case of a batch of logits: what prediction keeps (``network_output`` of the softmax), as numpy."""
        import torch

        return list(self.network_output(torch.softmax(logits, dim=1)).cpu().numpy())

    def checkpoint_class_names(self, class_names: Sequence[str]) -> list[str] | None:
        """Class names that decide whether a checkpoint's head may be reused (``None``: shape decides)."""
        return None

    # --- per-case rows and metrics -----------------------------------------------------------------------

    def case_rows(self, case: Any, output, class_names, num_classes) -> list[dict]:
        """The task part of a case's out-of-fold rows: one row (several for multitask: one per task)."""
        return [self.case_row(case, output, class_names, num_classes)]

    @abstractmethod
    def case_row(self, case: Any, output: np.ndarray, class_names: Sequence[str], num_classes: int) -> dict:
        """The task part of one out-of-fold row (label and probabilities, or Dice/IoU/HD95)."""

    @abstractmethod
    def result_columns(self, class_names: Sequence[str]) -> list[str]:
        """The per-case value columns of ``predictions.csv``."""

    def case_columns(self, class_names: Sequence[str], rows: Sequence[dict]) -> list[str]:
        """The per-case value columns of ``predictions.csv`` for these ``rows`` (``result_columns`` by default)."""
        return self.result_columns(class_names)

    @abstractmethod
    def fold_metrics(self, rows: Sequence[dict], class_names: Sequence[str]) -> dict[str, float]:
        """Metrics of one fold from its rows."""

    @abstractmethod
    def pooled_statistic(self, metric: str, rows: Sequence[dict],
                         class_names: Sequence[str]) -> Callable[[np.ndarray], float]:
        """``indices -> metric`` over any subset of ``rows`` (for the patient bootstrap)."""

    def pooled_statistics(self, rows: Sequence[dict], class_names: Sequence[str]) -> Callable[[np.ndarray], dict]:
        """``indices -> {metric: value}`` for every metric at once (one bootstrap pass for all metrics)."""
        statistics = {m: self.pooled_statistic(m, rows, class_names) for m in self.metric_names}
        return lambda idx: {m: statistic(idx) for m, statistic in statistics.items()}

    def class_statistics(self, rows: Sequence[dict], class_names: Sequence[str]) -> dict[str, dict]:
        """Per-class figures beside the case-level ones (none by default): ``{class: {"counts": {...},
        "statistics": {metric: indices -> value}}}``, bootstrapped by ``medtl.evaluate.summary.class_breakdown``."""
        return {}

    @abstractmethod
    def averaged_columns(self, class_names: Sequence[str]) -> list[str]:
        """Columns averaged over CV repeats to get one row per case."""

    def average_rows(self, rows: Sequence[dict], class_names: Sequence[str]) -> list[dict]:
        """One row per case: the ``averaged_columns`` averaged over CV repeats (NaN-excluding)."""
        return self._average(rows, self.averaged_columns(class_names))

    @staticmethod
    def _average(rows: Sequence[dict], columns: Sequence[str]) -> list[dict]:
        by_case: dict[str, list[dict]] = {}
        for row in rows:
            by_case.setdefault(row["case_id"], []).append(row)
        out = []
        for case_rows in by_case.values():
            merged = dict(case_rows[0])
            if len(case_rows) == 1:  # one repeat: each value is its own mean (as a float; NaN where undefined)
                for column in columns:
                    value = math.nan if merged[column] is None else float(merged[column])
                    merged[column] = value if math.isfinite(value) else math.nan
            else:
                for column in columns:
                    values = np.array([r[column] for r in case_rows], dtype=float)
                    merged[column] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
            out.append(merged)
        return out

    def arm_warnings(self, arm: str, rows: Sequence[dict]) -> list[str]:
        """Facts about an arm's predictions that its summary numbers could hide (none by default)."""
        return []

    def overlay_cases(self, cases: Sequence[Any]) -> list[int]:
        """Indices of the validation cases the report draws (their outputs go to ``save_overlays``)."""
        return []

    def save_overlays(self, path, cases: Sequence[Any], outputs: dict[int, np.ndarray]) -> None:
        """Store what the report draws over images, from ``{case index: output}`` (nothing by default)."""

    # --- prediction on new data (medtl predict / evaluate / export) -----------------------------------------

    head_description: str = ""  # the head in words (model card)

    def heads(self, class_names, num_classes) -> dict[str, tuple["Task", Any, Any]]:
        """``{head name: (task, class names, classes)}``; a single task's one head is named ``""``."""
        return {"": (self, class_names, num_classes)}

    def prediction_columns(self, class_names, truth: bool, explain: bool, explained: str | None = None) -> list[str]:
        """The task's columns of ``medtl predict``'s ``predictions.csv`` (``truth``: evaluate's scored columns;
        ``explain``: explanation maps written; ``explained``: the multitask head they explain)."""
        return self.head_columns(class_names, truth, explain)

    def prediction_values(self, record: dict, class_names, truth: bool) -> dict:
        """The values of ``prediction_columns`` for one predicted case (``record``: the engine's journal entry)."""
        return self.head_values(record, class_names, truth)

    @abstractmethod
    def head_columns(self, class_names, truth: bool, explain: bool) -> list[str]:
        """This task's prediction columns as one head (unprefixed)."""

    @abstractmethod
    def head_values(self, entry: dict, class_names, truth: bool) -> dict:
        """This task's prediction values as one head, from its journal ``entry``."""

    @abstractmethod
    def external_row(self, entry: dict, class_names, label) -> tuple[dict, list[dict]] | None:
        """``(row, one row per fold model)`` of a predicted case for ``medtl evaluate``'s metrics, the values only
        (keys are added by the caller); ``None`` when the case carries no target for this task. ``label``: the
        manifest's label of the case (classification)."""

    # --- reports -----------------------------------------------------------------------------------------

    @abstractmethod
    def data_counts(self, cases: Sequence[Any], class_names: Sequence[str]) -> dict[str, int]:
        """Counts for the report's Data section."""

    @abstractmethod
    def report_sections(self, arm_rows: dict[str, list[dict]], class_names: Sequence[str], figures,
                        overlays: Callable[[], str]) -> list[tuple[str, str]]:
        """Task-specific sections of the cv report; ``figures`` is ``medtl.evaluate.figures``."""

    @abstractmethod
    def external_sections(self, rows: list[dict], member_rows: dict[str, list[dict]],
                          class_names: Sequence[str], figures) -> list[tuple[str, str]]:
        """Task-specific sections of the external-validation report."""
