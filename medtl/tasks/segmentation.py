"""Segmentation: a label map per case; Dice, IoU and HD95 (mm) per case, summarised so empty masks cannot decide.

Primary figures (``dice``, ``iou``, ``hd95``) average over the cases whose truth has
foreground: an empty prediction on an empty truth scores 1 by convention, and a run
full of lesion-free images would otherwise look good (and "win" a comparison) without
segmenting anything. The empty cases are scored as detection instead:
``empty_fp_rate`` is the share of them with any predicted foreground. ``dice_all``
(every case, conventions included) is reported for completeness. Comparisons between
arms use the primary ``dice``.

``hd95`` is undefined for a case whose lesion got no prediction at all, so it averages only
over the lesions an arm found: an arm that misses the hard lesions gets a *better* HD95.
``hd95_undefined`` (the share of cases with a lesion whose HD95 is undefined) therefore
stands beside ``hd95`` in every summary; read them together.

With several foreground classes, a case's figures average the classes present in its truth
(an absent class is neither a free 1 nor, for a few stray pixels, a 0); each class is also
scored on its own cases, and predicting a class where it is absent is counted as a detection
error (``stray_rate``): ``class_statistics``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..plumbing.html import html_image, html_table
from .base import Task
from .metrics import SEGMENTATION_CASE_COLUMNS, segmentation_case_metrics


def had_foreground(case: Any) -> bool:
    """Whether the case's mask *as given* has foreground (a prepared case records it; otherwise its mask says)."""
    known = getattr(case, "had_foreground", None)
    return bool(known) if known is not None else bool(case.mask.any())


def lost_foreground(case: Any) -> bool:
    """The given mask has foreground, the network-grid mask none: the lesion vanished in preprocessing."""
    return had_foreground(case) and not bool(case.mask.any())


def foreground_classes(rows: Sequence[dict]) -> list[int]:
    """The foreground classes that have per-class columns in ``rows`` (none for a single foreground class)."""
    return sorted(int(k[len("stray_"):]) for k in (rows[0] if rows else {}) if k.startswith("stray_"))


def _mean(values: np.ndarray) -> float:
    """NaN-excluding mean; NaN when nothing is left (no case of that kind)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


# what medtl predict writes about each predicted mask (besides the scores, when the truth is known)
MASK_OUTPUT_COLUMNS = ["shape", "foreground_voxels", "foreground_mm", "mask_file", "seg_file", "prob_files"]


class SegmentationTask(Task):
    """A label mask per case (the manifest's ``mask`` column); class 0 is background."""

    name = "segmentation"
    head = "segmentation"
    target_column = "mask"
    primary_metric = "dice"
    metric_names = ("dice", "iou", "hd95", "hd95_undefined", "empty_fp_rate", "dice_all")
    uses_mask = True
    min_classes = 0  # the target is the mask: a manifest needs no label column
    head_description = "U-Net decoder"

    def check_cases(self, cases: Sequence[Any], where: str) -> None:
        if cases and not any(case.mask is not None and case.mask.any() for case in cases):
            from ..errors import InputError

            raise InputError(f"{where}: the masks of its {len(cases)} usable case(s) have no foreground (every voxel is "
                             "0), so there is nothing to segment; check the mask column (label maps with 1 for the "
                             "lesion) or the mask files' orientation")

    def num_classes(self, class_names: Sequence[str], cases: Sequence[Any]) -> int:
        return max(2, int(max(int(c.mask.max()) for c in cases)) + 1)

    def stratum(self, case: Any) -> int:
        return int(had_foreground(case))  # the mask as given: a lesion lost in a resize is still a lesion

    def loss(self, kind: str, class_weights=None) -> Callable:
        from .losses import segmentation_loss

        return segmentation_loss()

    def network_output(self, probabilities):
        return probabilities.argmax(1)

    def case_row(self, case: Any, output: np.ndarray, class_names: Sequence[str], num_classes: int) -> dict:
        row = {"label": "mask", **segmentation_case_metrics(output, np.array(case.mask[0]), num_classes, case.spacing)}
        if lost_foreground(case):  # a lesion case that cannot be scored on this grid: neither 0 nor lesion-free
            row.update({key: math.nan for key in row if key.startswith(("dice", "iou", "hd95"))}, truth_empty=0.0)
        return row

    def result_columns(self, class_names: Sequence[str]) -> list[str]:
        return list(SEGMENTATION_CASE_COLUMNS)

    def prediction_columns(self, class_names, truth: bool, explain: bool, explained: str | None = None) -> list[str]:
        return MASK_OUTPUT_COLUMNS + (["label", *self.result_columns(class_names)] if truth else [])

    def prediction_values(self, record: dict, class_names, truth: bool) -> dict:
        values = {k: record[k] for k in MASK_OUTPUT_COLUMNS}
        if truth:
            values["label"] = "mask"
            values.update({k: record["metrics"][k] for k in self.result_columns(class_names)})
        return values

    def head_columns(self, class_names, truth: bool, explain: bool) -> list[str]:
        return MASK_OUTPUT_COLUMNS + (self.result_columns(class_names) if truth else [])

    def head_values(self, entry: dict, class_names, truth: bool) -> dict:
        values = {k: entry[k] for k in MASK_OUTPUT_COLUMNS}
        if truth:
            values.update(entry.get("metrics", {}))
        return values

    def external_row(self, entry: dict, class_names, label) -> tuple[dict, list[dict]] | None:
        if "metrics" not in entry:  # no truth mask for this case
            return None
        return dict(entry["metrics"]), [dict(m) for m in entry["member_metrics"]]

    def fold_metrics(self, rows: Sequence[dict], class_names: Sequence[str]) -> dict[str, float]:
        index = np.arange(len(rows))
        return {name: self.pooled_statistic(name, rows, class_names)(index) for name in self.metric_names}

    def pooled_statistic(self, metric: str, rows: Sequence[dict], class_names: Sequence[str]):
        truth_empty = np.array([bool(r.get("truth_empty", 0) >= 0.5) for r in rows])
        if metric == "empty_fp_rate":
            predicted = np.array([1.0 - float(r.get("pred_empty", 1.0)) for r in rows])
            return lambda idx: _mean(predicted[idx][truth_empty[idx]])
        if metric == "hd95_undefined":  # a lesion with no prediction at all has no HD95: HD95 alone would hide it
            scored = np.array([math.isfinite(float(r["dice"])) for r in rows])  # not a lesion lost in preprocessing
            undefined = np.array([float(not math.isfinite(float(r["hd95"]))) for r in rows])
            return lambda idx: _mean(undefined[idx][~truth_empty[idx] & scored[idx]])
        values = np.array([r["dice" if metric == "dice_all" else metric] for r in rows], dtype=float)
        if metric == "dice_all":
            return lambda idx: _mean(values[idx])
        return lambda idx: _mean(values[idx][~truth_empty[idx]])

    def class_statistics(self, rows: Sequence[dict], class_names: Sequence[str]) -> dict[str, dict]:
        """With several foreground classes: per class, Dice/IoU/HD95/``hd95_undefined`` over the cases whose truth
        has the class, and ``stray_rate`` (the class predicted where it is absent) over the others."""
        out = {}
        for c in foreground_classes(rows):
            value = {m: np.array([float(r[f"{m}_{c}"]) for r in rows]) for m in ("dice", "iou", "hd95", "stray")}
            present = np.isfinite(value["dice"])
            undefined = (~np.isfinite(value["hd95"])).astype(float)

            def among(values: np.ndarray, where: np.ndarray) -> Callable[[np.ndarray], float]:
                return lambda idx: _mean(values[idx][where[idx]])

            out[str(c)] = {"counts": {"n_cases": int(present.sum()), "n_cases_without": int((~present).sum())},
                           "statistics": {"dice": among(value["dice"], present), "iou": among(value["iou"], present),
                                          "hd95": among(value["hd95"], present),
                                          "hd95_undefined": among(undefined, present),
                                          "stray_rate": among(value["stray"], ~present)}}
        return out

    def average_rows(self, rows: Sequence[dict], class_names: Sequence[str]) -> list[dict]:
        extra = [f"{m}_{c}" for c in foreground_classes(rows) for m in ("dice", "iou", "hd95", "stray")]
        return self._average(rows, self.averaged_columns(class_names) + extra)

    def arm_warnings(self, arm: str, rows: Sequence[dict]) -> list[str]:
        if rows and all(float(r.get("pred_empty", 0)) >= 0.5 for r in rows):
            lesions = sum(float(r.get("truth_empty", 1)) < 0.5 for r in rows)
            return [f"arm '{arm}' predicts no foreground in any of its {len(rows)} out-of-fold cases: it has not "
                    f"learned to segment ({lesions} cases with a lesion all score Dice 0); its dice_all comes only "
                    "from the empty-mask convention"]
        return []

    def averaged_columns(self, class_names: Sequence[str]) -> list[str]:
        return ["dice", "iou", "hd95", "pred_empty"]

    def data_counts(self, cases: Sequence[Any], class_names: Sequence[str]) -> dict[str, int]:
        counts = {"cases with foreground": sum(had_foreground(c) for c in cases),
                  "empty masks": sum(not had_foreground(c) for c in cases)}
        lost = sum(lost_foreground(c) for c in cases)
        if lost:
            counts["lesions lost in preprocessing (not scored)"] = lost
        return counts

    def preparation_warnings(self, cases: Sequence[Any]) -> list[str]:
        lost = [c.case_id for c in cases if lost_foreground(c)]
        if not lost:
            return []
        shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
        lesions = sum(had_foreground(c) for c in cases)
        return [f"{len(lost)} of {lesions} case(s) with a lesion have none left after preprocessing (cases {shown}): "
                "the lesion vanished when the mask was resized to the network grid. They are left out of Dice, IoU "
                "and HD95 (never counted as lesion-free) and train as if lesion-free; use a larger data.image_size, "
                "or data.mode: patch (native resolution)"]

    def report_sections(self, arm_rows, class_names, figures, overlays) -> list[tuple[str, str]]:
        return [("Dice and IoU per case", html_image(figures.distribution_figure(arm_rows), "distributions")),
                *self._class_section(arm_rows, class_names),
                ("Segmentation overlays (green: truth, red dashed: prediction)", overlays())]

    def external_sections(self, rows, member_rows, class_names, figures) -> list[tuple[str, str]]:
        return [("Dice and IoU per case (original image grid)",
                 html_image(figures.distribution_figure({"ensemble": rows}), "distributions")),
                *self._class_section({"ensemble": rows}, class_names)]

    def case_columns(self, class_names: Sequence[str], rows: Sequence[dict]) -> list[str]:
        return self.result_columns(class_names) + [f"{m}_{c}" for c in foreground_classes(rows)
                                                   for m in ("dice", "iou", "hd95", "stray")]

    def _class_section(self, arm_rows: dict[str, list[dict]], class_names) -> list[tuple[str, str]]:
        """Per class and arm: cases with the class, its Dice/IoU/HD95 there, and how often it was predicted where
        it is absent (metrics.json ``per_class`` has the patient-bootstrap intervals)."""
        table = []
        for arm, rows in arm_rows.items():
            averaged = self.average_rows(rows, class_names)
            for c, spec in self.class_statistics(averaged, class_names).items():
                every = np.arange(len(averaged))
                values = {m: f(every) for m, f in spec["statistics"].items()}
                table.append([arm, c, spec["counts"]["n_cases"], values["dice"], values["iou"], values["hd95"],
                              values["hd95_undefined"], spec["counts"]["n_cases_without"], values["stray_rate"]])
        if not table:
            return []
        header = ["arm", "class", "cases with the class", "Dice", "IoU", "HD95 (mm)", "HD95 undefined",
                  "cases without it", "predicted where absent"]
        return [("Per class (each class scored on the cases whose truth has it; NaN: no such case)",
                 html_table(header, table))]

    def overlay_cases(self, cases: Sequence[Any], count: int = 2) -> list[int]:
        """The cases with most foreground."""
        return sorted(range(len(cases)), key=lambda i: -int(cases[i].mask.sum()))[:count]

    def save_overlays(self, path, cases: Sequence[Any], outputs: dict[int, np.ndarray]) -> None:
        """(image, truth, prediction) of the slice with most foreground of each case in ``outputs``.

        Cases of different extents (patch mode) are cropped to their common smallest size
        around their centre so they stack.
        """
        from ..plumbing.atomic import atomic_path

        images, truths, preds = [], [], []
        for i in sorted(outputs):
            image, truth, pred = np.asarray(cases[i].image[0]), np.asarray(cases[i].mask[0]), outputs[i]
            if image.ndim == 3:
                k = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(1)))
                image, truth, pred = image[k], truth[k], pred[k]
            images.append(image)
            truths.append(truth)
            preds.append(pred)
        if not images:
            return
        common = np.min([a.shape for a in images], axis=0)

        def centre(a: np.ndarray) -> np.ndarray:
            starts = [(s - c) // 2 for s, c in zip(a.shape, common)]
            return a[tuple(slice(st, st + c) for st, c in zip(starts, common))]

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, image=np.stack([centre(a) for a in images]),
                                    truth=np.stack([centre(a) for a in truths]),
                                    pred=np.stack([centre(a) for a in preds]))
