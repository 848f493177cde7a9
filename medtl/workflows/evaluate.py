"""``medtl evaluate``: external validation of a run's models on a labelled manifest.

Predictions come from the same engine as ``medtl predict`` (so it resumes, skips
bad cases with reasons, and maps segmentations back to each image's original grid);
the scores come from the same functions as ``medtl cv``: ``classification_metrics``
or ``segmentation_case_metrics`` per case, ``arm_summary`` for the patient bootstrap.
In ``metrics.json`` the ``folds`` are the individual fold models scored on the
external set, and ``pooled`` (with ``ci95``) is the ensemble that ``predict`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.provenance import training_overlap
from ..errors import InputError
from ..evaluate.sites import site_metrics
from ..evaluate.summary import arm_summary, results_block
from ..plumbing.atomic import write_json
from ..rundir import PredictDir, RunDir
from ..tasks import task_of
from ..tasks.multitask import task_folds, task_rows
from .cv_tasks import primary_view


@dataclass
class ExternalResult:
    """Scores of one external validation: metrics.json content, per-case rows, warnings."""

    out: Path
    metrics: dict
    rows: list[dict]  # one per scored case: case_id, patient_key, label_index / prob_*, or dice/iou/hd95
    member_rows: dict[str, list[dict]]  # fold model -> its rows (same layout)
    class_names: list[str]
    warnings: list[str] = field(default_factory=list)


def _check_labels(labels: set[str], class_names: list[str], manifest: Path) -> None:
    unknown = sorted(labels - set(class_names))
    if unknown:
        raise InputError(f"manifest {manifest} has label(s) {unknown} that the run was not trained on "
                         f"(its classes: {class_names}); fix the labels or evaluate a matching run")


def _patient_keys(records: list[dict], warnings: list[str]) -> list[str]:
    missing = [r["key"] for r in records if not r["patient_key"]]
    if missing:
        warnings.append(f"{len(missing)} case(s) have no patient id (no patient_id column, no PatientID): each is "
                        "treated as its own patient, so CIs are too narrow if patients repeat")
    return [r["patient_key"] or f"case:{r['key']}" for r in records]


def _external_rows(trained, records: list[dict], patients: list[str]):
    """``(rows, {fold model: rows})`` for the metrics: each case on each head whose target the manifest gives it
    (a multitask row carries a ``task`` column); the values come from the head's ``Task``."""
    rows, member_rows = [], {m.name: [] for m in trained.members}
    for name, (task, names, _) in trained.heads().items():
        for i, record in enumerate(records):
            entry = record["tasks"][name] if name else record
            scored = task.external_row(entry, names, entry.get("label"))
            if scored is None:
                continue
            row, per_member = scored
            base = {"case_id": record["key"], "patient_key": patients[i], **({"task": name} if name else {})}
            rows.append({**base, **row})
            for member, values in zip(trained.members, per_member):
                member_rows[member.name].append({**base, **values})
    return rows, member_rows


def _member_record(trained, member, rows: list[dict]) -> dict:
    record = {"fold": member.fold, "repeat": member.repeat, "model": member.name,
              "n_train": member.record.get("n_train"), "n_val": len({r["case_id"] for r in rows}),
              "n_val_patients": len({r["patient_key"] for r in rows})}
    record.update(task_of(trained.config).fold_metrics(rows, trained.class_names))
    return record


def _task_summaries(trained, fold_records: list[dict], rows: list[dict]) -> dict[str, dict]:
    """``metrics.json["tasks"]`` of a multitask external validation: each task's ensemble and fold models."""
    config, multi = trained.config, task_of(trained.config)
    out = {}
    for name, kind in trained.task_kinds.items():
        mine = task_rows(rows, name)
        if not mine:
            out[name] = {"kind": kind, "primary_metric": multi.tasks[name].primary_metric, "n_cases": 0,
                         "note": "no case of the manifest has this task's target"}
            continue
        summary = arm_summary(kind, task_folds(fold_records, name), mine, trained.class_names[name],
                              config.cv.bootstrap, config.train.seed)
        out[name] = {"kind": kind, "primary_metric": multi.tasks[name].primary_metric,
                     "class_names": trained.class_names[name], "n_cases": len(mine),
                     "n_patients": len({r["patient_key"] for r in mine}), "summary": summary["summary"],
                     "folds": summary["folds"], "arms": {trained.arm: summary}, "comparisons": []}
    return out


def _external_calibration(metrics: dict, trained, records: list[dict], rows: list[dict], site_of: dict,
                          warnings: list[str]) -> None:
    """The calibrated model on the external set, per calibrated head: ECE/Brier/NLL, and with prediction sets their
    coverage per class and per site (the check of whether the guarantee transfers to this set)."""
    from ..evaluate.calibration_summary import calibration_summary

    blocks = {}
    for head, calibration in trained.head_calibrations().items():
        names = trained.class_names[head] if head else trained.class_names
        sets = {r["key"]: "|".join(e["prediction_set"]) for r in records
                for e in [r["tasks"][head] if head else r] if "prediction_set" in e}
        scored = [{**row, **({"prediction_set": sets[row["case_id"]]} if row["case_id"] in sets else {})}
                  for row in rows if row.get("task", "") == head]
        if not scored:
            continue
        alpha = calibration.sets.alpha if calibration.sets is not None else None
        block = calibration_summary(scored, names, alpha, site_of, trained.config.train.seed)
        block["summary"].pop("before")  # the outputs here are calibrated already; the run's report has the before
        for site in block["summary"].get("per_site", {}).values():
            site.pop("before")
        blocks[head] = {**block["summary"], "source": calibration.to_dict()}
        warnings += [f"task {head}: {w}" if head else w for w in block["warnings"]]
    if blocks:
        metrics["calibration"] = blocks[""] if list(blocks) == [""] else {"tasks": blocks}


def evaluate_run(run_dir: str | Path, manifest: str | Path, out: str | Path, options, arm: str | None = None,
                 fold: int | None = None) -> ExternalResult:
    """Predict ``manifest`` with the run's models into ``out`` and write metrics.json and report.html."""
    from ..evaluate.external_report import write_external_report
    from ..export.loaded import is_export_dir
    from ..models.trained import load_trained_run
    from ..predict.engine import predict_items
    from ..predict.items import read_inputs
    from ..rundir import check_output_folder

    check_output_folder(out, "predict")
    if options.shard != (1, 1):
        raise InputError("evaluate scores the whole manifest; --shard is for `medtl predict`")
    if is_export_dir(run_dir):
        raise InputError(f"{run_dir} is an export folder (`medtl export`); `medtl evaluate` needs the cv run folder "
                         "it came from (its record of the training images is what tells an external set from a "
                         "copy of the training data). Give the run folder, or use `medtl predict` with the export")
    from .calibrate import with_calibration

    trained = with_calibration(load_trained_run(run_dir, arm=arm, fold=fold), options.calibration)
    task = task_of(trained.config)
    manifest = Path(manifest)
    inputs = read_inputs(manifest, trained.task_name, targets=True, progress=options.progress,
                         tasks=trained.config.tasks)
    for name, (head, names, _) in trained.heads().items():
        if head.uses_label:
            labels = {i.labels.get(name) for i in inputs.items} - {None} if name else {i.label for i in inputs.items}
            _check_labels(labels, names, manifest)
    outcome = predict_items(trained, inputs, out, options, truth=True)
    records = outcome.records
    if not records:
        raise InputError(f"no case of {manifest} could be evaluated; see {outcome.out}/skipped.csv for reasons")
    warnings = [f"{len(outcome.skipped)} case(s) skipped: " + ", ".join(
        f"{k} {v}" for k, v in outcome.summary["skip_rows_by_reason"].items())] if outcome.skipped else []
    warnings += sorted({f"{code.split('(')[0]} in {sum(code.split('(')[0] in r['reasons'] for r in records)} "
                        "case(s)" for r in records for code in r["reasons"].split(";") if code})
    overlap = training_overlap(RunDir(trained.path).training_images, records)
    if overlap is not None and overlap.copies:
        warnings.insert(0, f"{overlap.copies} of {len(inputs.items)} case(s) are images this run trained or validated "
                           f"on ({overlap.describe()}): this is not an independent external validation")
    elif overlap is not None and overlap.near:
        warnings.insert(0, f"{overlap.near} of {len(inputs.items)} case(s) are near-identical to images this run "
                           "trained or validated on (possible copies, e.g. JPEG re-encodes): check that this set is "
                           "independent")
    elif overlap is None:
        warnings.append("the run has no pixel-hash training_images.json (made by an older medtl): overlap with its "
                        "training images was not checked")
    patients = _patient_keys(records, warnings)
    config = trained.config
    if task.is_composite:
        rows, member_rows = _external_rows(trained, records, patients)
        fold_records = [_member_record(trained, m, member_rows[m.name]) for m in trained.members]
        tasks = _task_summaries(trained, fold_records, rows)
        primary = tasks[task.primary_task]
        if "summary" not in primary:
            raise InputError(f"no case of {manifest} has a target for task '{task.primary_task}' (the first task); "
                             "external validation reports the first task at the top of metrics.json")
        summary = {"summary": primary["summary"], "folds": primary["folds"]}
        metrics = results_block(task.name, trained.arm, {trained.arm: summary}, [], tasks, task.primary_task)
    else:
        rows, member_rows = _external_rows(trained, records, patients)
        fold_records = [_member_record(trained, m, member_rows[m.name]) for m in trained.members]
        summary = arm_summary(task.name, fold_records, rows, trained.class_names, config.cv.bootstrap,
                              config.train.seed)
        metrics = results_block(task.name, trained.arm, {trained.arm: summary}, [])
        statement = task.positive_class(trained.class_names, config.data.positive_class)
        if statement:  # the run's positive class (its models' class order)
            metrics["positive_class"] = statement
            if "note" in statement:
                warnings.insert(0, statement["note"])
    metrics.update({"external": True, "model_id": trained.model_id,
                    "ensemble_of": [m.name for m in trained.members], "class_names": trained.class_names,
                    "n_cases": len(records), "n_patients": len(set(patients)), "n_skipped": len(outcome.skipped),
                    "training_overlap": overlap.copies if overlap is not None else None,
                    "training_overlap_detail": ({"pixels": overlap.pixels, "network": overlap.network,
                                                 "near": overlap.near} if overlap is not None else None), "skipped_by_reason": outcome.summary["skip_rows_by_reason"],
                    "segmentation_grid": "original image grid" if task.uses_mask else None,
                    "warnings": warnings})
    site_of = {i.key: i.site for i in inputs.items if i.site}
    if site_of:
        kind, rows_of, names = primary_view(config, trained.class_names)  # multitask: the first task
        metrics["sites"] = {"column": "site", "scheme": "external", "sites": sorted(set(site_of.values())),
                            "cases_per_site": {s: sum(site_of.get(r["case_id"]) == s for r in rows_of(rows))
                                               for s in sorted(set(site_of.values()))},
                            "per_site": {trained.arm: site_metrics(kind, rows_of(rows), site_of, names,
                                                                   config.cv.bootstrap, config.train.seed)},
                            "comparisons": [], "shift_check": [],
                            "shift_check_note": "not computed for external validation"}
    if trained.head_calibrations():
        _external_calibration(metrics, trained, records, rows, site_of, warnings)
    out = Path(out)
    write_json(PredictDir(out).metrics, metrics)
    result = ExternalResult(out, metrics, rows, member_rows, trained.class_names, warnings)
    write_external_report(result, trained)
    return result
