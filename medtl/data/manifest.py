"""Manifest CSV -> cases (format in docs/outputs.md).

Columns: ``image`` (required), ``label`` (classification), ``mask`` (segmentation),
``patient_id`` (grouping key; if absent, the DICOM PatientID), ``case_id`` (optional),
``site`` (optional: hospital/scanner, for per-site metrics and leave-one-site-out).
Relative paths resolve against the manifest's folder. Patient ids are turned into
keyed hashes here and never travel further.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from ..io.pseudonym import keyed_hash
from ..plumbing.text import read_user_text
from ..tasks import get_task


@dataclass
class Case:
    """One row of a manifest: paths, label and opaque keys."""

    case_id: str
    image: Path
    label: str | None
    mask: Path | None
    patient_key: str  # empty until read from the DICOM header when the manifest has no patient_id
    group_key: str
    line: int = 0  # line of the manifest (for messages)
    split: str = ""  # train / val / test from a ``split`` column (fixed splits), else empty
    site: str = ""  # the ``site`` column (hospital, scanner, vendor): the user's label, reported as given
    labels: dict[str, str | None] = field(default_factory=dict)  # multitask: class label per classification task


@dataclass
class Manifest:
    """The cases of a manifest and the sorted class names of its labels.

    Multi-task manifests have ``class_names`` per task (``{task: [names]}``; a
    segmentation task has none).
    """

    path: Path
    cases: list[Case]
    class_names: list[str] | dict[str, list[str]]

    @property
    def sites(self) -> list[str]:
        """The distinct values of the ``site`` column, sorted (empty without the column)."""
        return sorted({c.site for c in self.cases if c.site})

    @property
    def num_classes(self) -> int:
        """Number of distinct labels."""
        return len(self.class_names)

    def class_index(self, label: str) -> int:
        """Index of ``label`` in ``class_names``."""
        return self.class_names.index(label)


def canonical_label(text: str) -> str:
    """One spelling per class: numeric labels by value (``1``, ``1.0`` and `` 01`` are class ``1``).

    A column mixing ``1`` and ``1.0`` (a spreadsheet round trip) must not become two classes.
    """
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return str(int(value)) if value.is_integer() else repr(value)


KNOWN_COLUMNS = ("image", "label", "mask", "patient_id", "case_id", "site", "split")


def _refuse_near_miss_columns(columns: list[str], group_by: str, path: Path, extra: Sequence[str] = ()) -> None:
    """A column that is almost a known one (``PatientID``, ``Label``) would be silently ignored: refuse it.

    Columns unlike any known name (``age``, ``notes``) are kept for the user and ignored.
    """
    import difflib

    known = set(KNOWN_COLUMNS) | {group_by} | set(extra)
    for column in columns:
        if column in known:
            continue
        folded = column.lower().replace(" ", "_")
        close = [k for k in known if folded == k or folded.replace("_", "") == k.replace("_", "")]
        close = close or difflib.get_close_matches(folded, sorted(known), n=1, cutoff=0.75)
        if close and close[0] not in columns:
            raise InputError(f"manifest {path} has a column '{column}'; did you mean '{close[0]}'? Rename it (column "
                             f"names are exact: {', '.join(KNOWN_COLUMNS)}), otherwise it would be ignored")


def sort_labels(labels: set[str]) -> list[str]:
    """Class names in their natural order: numerically when every label is a number, else alphabetically."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


SPLIT_VALUES = ("train", "val", "test")


def group_hash(value: str, seed_by: str) -> str:
    """The key folds are drawn over: keyed with the project salt, or (``patient_id``) with a fixed public key.

    Fold assignment depends on these keys, so with ``seed_by="patient_id"`` the same
    manifest gives the same folds on every machine. The fixed-key hash never leaves
    memory: outputs carry only salted keys.
    """
    if seed_by == "patient_id":
        import hashlib

        return hashlib.sha256(f"medtl-split-v1\0{value}".encode()).hexdigest()[:16]
    return keyed_hash(value, "group")


def read_config_manifest(config, path: str | Path | None = None, **options) -> Manifest:
    """The manifest of a config (``data.manifest``, or ``path``) read for its task, tasks, grouping and positive
    class."""
    return read_manifest(path or config.data.manifest, config.task, config.cv.group_by, tasks=config.tasks,
                         split_seed_by=config.cv.split_seed_by, positive_class=config.data.positive_class, **options)


def positive_last(labels: list[str], positive: str | None, where: str, setting: str) -> list[str]:
    """Sorted class names with ``positive`` moved to the end (class index 1 of two: what sensitivity,
    specificity and F1 call positive); unchanged without one."""
    if positive is None:
        return labels
    positive = canonical_label(str(positive))
    if positive not in labels:
        raise InputError(f"{setting} is {positive!r}, which is not a class of {where} (its classes: {labels}); "
                         "use one of those labels")
    if len(labels) != 2:
        raise InputError(f"{setting} applies to two classes; {where} has {len(labels)} ({labels}), whose metrics "
                         "are macro averages over all classes: remove it")
    return [label for label in labels if label != positive] + [positive]


def _multitask_targets(row: dict, tasks: Sequence, where: str, base: Path) -> tuple[dict, Path | None]:
    """``({task: label or None}, mask path or None)`` of one row of a multi-task manifest."""
    labels, mask = {}, None
    for spec in tasks:
        value = row.get(spec.column, "")
        if get_task(spec.kind).uses_label:
            labels[spec.name] = canonical_label(value) if value else None
        elif value:
            mask = (base / value).resolve()
    if all(v is None for v in labels.values()) and mask is None:
        columns = ", ".join(s.column for s in tasks)
        raise InputError(f"{where}: no target for any task (columns {columns} are all empty); fill one or remove "
                         "the row")
    return labels, mask


def read_manifest(path: str | Path, task: str, group_by: str = "patient_id", targets: bool = True,
                  single_class_ok: bool = False, split_seed_by: str = "salt", tasks: Sequence = (),
                  positive_class: str | None = None) -> Manifest:
    """Read and validate a manifest; errors name the row and column to fix.

    ``targets=False`` (for ``medtl predict``) needs only the ``image`` column;
    ``single_class_ok`` allows an external test set holding one class only. ``tasks``
    (the ``TaskSpec`` list of ``task: multitask``) names each task's column; a row may
    leave some of them empty (that task has no target for the case).
    """
    path = Path(path)
    multitask = bool(tasks)  # task: multitask names its tasks; every other task is a registered one
    target = None if multitask else get_task(task).target_column
    if not path.is_file():
        from ..plumbing.paths import missing_file_message

        raise InputError(missing_file_message(path, "manifest", "set data.manifest (relative to the config file)"))
    reader = csv.DictReader(io.StringIO(read_user_text(path, "manifest"), newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    _refuse_near_miss_columns(columns, group_by, path, [s.column for s in tasks])
    needed = ["image"] + (([s.column for s in tasks] if multitask else [target]) if targets else [])
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(f"manifest {path} lacks column(s) {missing} needed for {task}; it has {columns}")
    if group_by != "patient_id" and group_by not in columns:
        raise InputError(f"cv.group_by is '{group_by}' but manifest {path} has no such column ({columns})")
    cases, seen_ids = [], set()
    for number, row in enumerate(rows, start=2):
        where = f"{path.name} line {number}"
        if not row.get("image"):
            raise InputError(f"{where}: empty 'image'")
        image = (path.parent / row["image"]).resolve()
        mask = (path.parent / row["mask"]).resolve() if row.get("mask") else None
        if targets and target == "mask" and mask is None:
            raise InputError(f"{where}: empty 'mask' in a segmentation manifest")
        label = canonical_label(row["label"]) if row.get("label") else None
        labels: dict = {}
        if multitask and targets:
            labels, mask = _multitask_targets(row, tasks, where, path.parent)
        if targets and target == "label" and label is None:
            raise InputError(f"{where}: empty 'label' in a classification manifest")
        case_id = row.get("case_id") or keyed_hash(row["image"], "case")
        if case_id in seen_ids:
            raise InputError(f"{where}: case_id '{case_id}' repeats; case ids must be unique")
        seen_ids.add(case_id)
        patient = row.get("patient_id", "")
        patient_key = keyed_hash(patient, "patient") if patient else ""
        group = row.get(group_by, "") if group_by != "patient_id" else patient
        if split_seed_by == "patient_id" and not group:
            raise InputError(f"{where}: cv.split_seed_by: patient_id needs the manifest's '{group_by}' column filled "
                             "(the raw id decides the folds); fill it, or use split_seed_by: salt")
        split = row.get("split", "").lower()
        if "split" in columns and split not in SPLIT_VALUES:
            raise InputError(f"{where}: split is {row.get('split')!r}; use one of {', '.join(SPLIT_VALUES)}")
        site = row.get("site", "")
        if "site" in columns and not site:
            raise InputError(f"{where}: empty 'site'; when the manifest has a site column every row needs one "
                             "(e.g. the hospital or scanner name)")
        cases.append(Case(case_id, image, label, mask, patient_key,
                          group_hash(group, split_seed_by) if group else "", number, split, site, labels))
    if not cases:
        raise InputError(f"manifest {path} has no rows")
    if multitask:
        return Manifest(path, cases, _task_classes(cases, tasks, path, targets and not single_class_ok))
    labels = sort_labels({c.label for c in cases if c.label is not None})
    if targets and len(labels) < get_task(task).min_classes and not single_class_ok:
        raise InputError(f"manifest {path} has {len(labels)} class(es) {labels}; {task} needs at least "
                         f"{get_task(task).min_classes}")
    if targets and get_task(task).uses_label:
        labels = positive_last(labels, positive_class, f"manifest {path.name}", "data.positive_class")
    return Manifest(path, cases, labels)


def _task_classes(cases: list[Case], tasks: Sequence, path: Path, check: bool) -> dict[str, list[str]]:
    """Sorted class names of each classification task (at least two each when ``check``)."""
    out = {}
    for spec in tasks:
        if not get_task(spec.kind).uses_label:
            out[spec.name] = []
            continue
        names = sort_labels({c.labels.get(spec.name) for c in cases} - {None})
        if check and len(names) < 2:
            raise InputError(f"manifest {path}: task '{spec.name}' (column {spec.column}) has {len(names)} class(es) "
                             f"{names}; a classification task needs at least 2")
        out[spec.name] = positive_last(names, spec.positive_class, f"column {spec.column} of manifest {path.name}",
                                       f"tasks[{spec.name}].positive_class")
    return out
