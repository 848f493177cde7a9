"""Classification: one label per case; AUC, PR-AUC, accuracy, sensitivity, specificity, F1."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..plumbing.html import html_image, html_table
from .base import Task
from .metrics import CLASSIFICATION_METRICS, classification_metrics, confusion


def _labels_and_probs(rows: Sequence[dict], class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([r["label_index"] for r in rows])
    probs = np.array([[r[f"prob_{n}"] for n in class_names] for r in rows], dtype=float)
    return labels, probs


class ClassificationTask(Task):
    """A class label per case (the manifest's ``label`` column)."""

    name = "classification"
    head = "classification"
    target_column = "label"
    primary_metric = "auc"
    metric_names = CLASSIFICATION_METRICS
    needs_all_classes_per_fold = True
    min_classes = 2
    uses_label = True
    head_description = "linear classification head"

    def num_classes(self, class_names: Sequence[str], cases: Sequence[Any]) -> int:
        return len(class_names)

    def stratum(self, case: Any) -> int:
        return int(case.label)

    def sampling_labels(self, cases: Sequence[Any]) -> list[int]:
        return [int(c.label) for c in cases]

    def class_weights(self, cases: Sequence[Any], num_classes: int, setting: str):
        from .losses import balanced_class_weights

        return balanced_class_weights([c.label for c in cases], num_classes) if setting == "balanced" else None

    def loss(self, kind: str, class_weights=None) -> Callable:
        from .losses import classification_loss

        return classification_loss(kind, class_weights)

    def positive_class(self, class_names, configured: str | None) -> dict | None:
        """``{name, negative, set_by[, note]}`` of a binary task: class index 1 is positive (``data.positive_class``
        puts the chosen label there). Labels other than 0/1 or false/true get a ``note`` saying which one the
        default made positive, so a reader never takes "sensitivity" to be about the wrong class."""
        if len(class_names) != 2:
            return None
        negative, positive = class_names
        out = {"name": positive, "negative": negative, "set_by": "data.positive_class" if configured else "default"}
        natural = {c.lower() for c in class_names} in ({"0", "1"}, {"false", "true"})
        if configured is None and not natural:
            out["note"] = (f"positive class: {positive} (the second label in sorted order; sensitivity, specificity, "
                           f"F1 and the explanation panels are about '{positive}', not '{negative}'): set "
                           "data.positive_class to change")
        return out

    def checkpoint_class_names(self, class_names: Sequence[str]) -> list[str]:
        return list(class_names)

    def case_row(self, case: Any, output: np.ndarray, class_names: Sequence[str], num_classes: int) -> dict:
        row: dict = {"label": class_names[case.label], "label_index": case.label}
        row.update({f"prob_{name}": float(p) for name, p in zip(class_names, output)})
        return row

    def result_columns(self, class_names: Sequence[str]) -> list[str]:
        return [f"prob_{n}" for n in class_names]

    def case_columns(self, class_names: Sequence[str], rows: Sequence[dict]) -> list[str]:
        """``prob_*``; with calibration also the model's own ``raw_prob_*``, and the conformal prediction set."""
        columns = self.result_columns(class_names)
        if any(f"raw_prob_{class_names[0]}" in r for r in rows):
            columns += [f"raw_prob_{n}" for n in class_names]
        if any("prediction_set" in r for r in rows):
            columns += ["prediction_set", "set_size"]
        return columns

    def prediction_columns(self, class_names, truth: bool, explain: bool, explained: str | None = None) -> list[str]:
        return ([f"prob_{n}" for n in class_names] + ["predicted"] +
                (["explained_class", "explain_file"] if explain else []) + (["label"] if truth else []))

    def prediction_values(self, record: dict, class_names, truth: bool) -> dict:
        values = self._probabilities(record, class_names)
        if "explain_file" in record:
            values.update(explain_file=record["explain_file"], explained_class=record["explained_class"])
        if truth:
            values["label"] = record["label"]
        return values

    def head_columns(self, class_names, truth: bool, explain: bool) -> list[str]:
        return ([f"prob_{n}" for n in class_names] + ["predicted"] + (["label"] if truth else []) +
                (["explained_class", "explain_file"] if explain else []))

    def head_values(self, entry: dict, class_names, truth: bool) -> dict:
        values = self._probabilities(entry, class_names)
        if truth:
            values["label"] = entry.get("label") or ""
        if "explain_file" in entry:
            values.update(explain_file=entry["explain_file"], explained_class=entry["explained_class"])
        return values

    @staticmethod
    def _probabilities(entry: dict, class_names) -> dict:
        values = {f"prob_{name}": round(p, 6) for name, p in zip(class_names, entry["probs"])}
        values["predicted"] = class_names[int(np.argmax(entry["probs"]))]
        return values

    def external_row(self, entry: dict, class_names, label) -> tuple[dict, list[dict]] | None:
        if label is None:
            return None
        base = {"label_index": class_names.index(label)}
        return ({**base, **{f"prob_{n}": p for n, p in zip(class_names, entry["probs"])}},
                [{**base, **{f"prob_{n}": p for n, p in zip(class_names, probs)}} for probs in entry["member_probs"]])

    def fold_metrics(self, rows: Sequence[dict], class_names: Sequence[str]) -> dict[str, float]:
        return classification_metrics(*_labels_and_probs(rows, class_names))

    def pooled_statistic(self, metric: str, rows: Sequence[dict], class_names: Sequence[str]):
        labels, probs = _labels_and_probs(rows, class_names)
        return lambda idx: classification_metrics(labels[idx], probs[idx], (metric,))[metric]

    def pooled_statistics(self, rows: Sequence[dict], class_names: Sequence[str]):
        labels, probs = _labels_and_probs(rows, class_names)
        return lambda idx: classification_metrics(labels[idx], probs[idx])

    def averaged_columns(self, class_names: Sequence[str]) -> list[str]:
        return self.result_columns(class_names)

    def data_counts(self, cases: Sequence[Any], class_names: Sequence[str]) -> dict[str, int]:
        return {name: sum(c.label == i for c in cases) for i, name in enumerate(class_names)}

    def report_sections(self, arm_rows, class_names, figures, overlays) -> list[tuple[str, str]]:
        sections = []
        if len(class_names) == 2:
            sections.append(("ROC curves", html_image(figures.roc_figure(arm_rows, class_names[1]), "ROC curves")))
        sections.append(("Calibration", html_image(figures.calibration_figure(arm_rows, class_names), "calibration")))
        main = next(iter(arm_rows))
        matrix = confusion(*_labels_and_probs(arm_rows[main], class_names))
        sections.append(("Confusion matrix", html_image(figures.confusion_figure(matrix, list(class_names), main),
                                                        "confusion")))
        return sections

    def external_sections(self, rows, member_rows, class_names, figures) -> list[tuple[str, str]]:
        counts = [[name, sum(r["label_index"] == i for r in rows)] for i, name in enumerate(class_names)]
        sections = [("Data", html_table(["class", "cases"], counts))]
        if len(class_names) == 2:
            ensemble = {"ensemble": [{**r, "repeat": 0, "fold": 0} for r in rows]}
            sections.append(("ROC curves: the ensemble (the table's AUC) and each fold model",
                             html_image(figures.roc_figure(ensemble, class_names[1], "ensemble",
                                                           member_rows=dict(member_rows)), "ROC")))
        sections.append(("Calibration", html_image(figures.calibration_figure({"ensemble": rows}, list(class_names)),
                                                   "calibration")))
        matrix = confusion(*_labels_and_probs(rows, class_names))
        sections.append(("Confusion matrix",
                         html_image(figures.confusion_figure(matrix, list(class_names), "ensemble"), "confusion")))
        return sections
