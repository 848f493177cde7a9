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
from ..evaluate.summary import arm_summary
from ..plumbing.atomic import write_json
from ..rundir import RunDir
from ..tasks import get_task


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


def _rows(trained, records: list[dict], patients: list[str], labels: list[int] | None):
    names = trained.class_names
    rows, member_rows = [], {m.name: [] for m in trained.members}
    for i, record in enumerate(records):
        base = {"case_id": record["key"], "patient_key": patients[i]}
        if labels is not None:
            base["label_index"] = labels[i]
            rows.append({**base, **{f"prob_{n}": p for n, p in zip(names, record["probs"])}})
            for member, probs in zip(trained.members, record["member_probs"]):
                member_rows[member.name].append({**base, **{f"prob_{n}": p for n, p in zip(names, probs)}})
        else:
            rows.append({**base, **record["metrics"]})
            for member, metrics in zip(trained.members, record["member_metrics"]):
                member_rows[member.name].append({**base, **metrics})
    return rows, member_rows


def _member_record(trained, member, rows: list[dict]) -> dict:
    record = {"fold": member.fold, "repeat": member.repeat, "model": member.name,
              "n_train": member.record.get("n_train"), "n_val": len(rows),
              "n_val_patients": len({r["patient_key"] for r in rows})}
    record.update(get_task(trained.task).fold_metrics(rows, trained.class_names))
    return record


def evaluate_run(run_dir: str | Path, manifest: str | Path, out: str | Path, options, arm: str | None = None,
                 fold: int | None = None) -> ExternalResult:
    """Predict ``manifest`` with the run's models into ``out`` and write metrics.json and report.html."""
    from ..evaluate.external_report import write_external_report
    from ..predict.engine import predict_items
    from ..predict.items import read_inputs
    from ..predict.trained import load_trained_run

    if options.shard != (1, 1):
        raise InputError("evaluate scores the whole manifest; --shard is for `medtl predict`")
    trained = load_trained_run(run_dir, arm=arm, fold=fold)
    task = get_task(trained.task)
    manifest = Path(manifest)
    inputs = read_inputs(manifest, trained.task, targets=True, progress=options.progress)
    if task.target_column == "label":
        _check_labels({i.label for i in inputs.items}, trained.class_names, manifest)
    outcome = predict_items(trained, inputs, out, options, truth=True)
    records = outcome.records
    if not records:
        raise InputError(f"no case of {manifest} could be evaluated; see {outcome.out}/skipped.csv for reasons")
    warnings = [f"{len(outcome.skipped)} case(s) skipped: " + ", ".join(
        f"{k} {v}" for k, v in outcome.summary["skip_rows_by_reason"].items())] if outcome.skipped else []
    warnings += sorted({f"{code.split('(')[0]} in {sum(code.split('(')[0] in r['reasons'] for r in records)} "
                        "case(s)" for r in records for code in r["reasons"].split(";") if code})
    overlap = training_overlap(RunDir(trained.path).training_images, [r.get("pixel_hash", "") for r in records])
    if overlap:
        warnings.insert(0, f"{overlap} of {len(inputs.items)} case(s) are byte-identical to images this run trained or "
                           "validated on: this is not an independent external validation")
    elif overlap is None:
        warnings.append("the run has no pixel-hash training_images.json (made by an older medtl): overlap with its "
                        "training images was not checked")
    patients = _patient_keys(records, warnings)
    labels = [trained.class_names.index(r["label"]) for r in records] if task.target_column == "label" else None
    rows, member_rows = _rows(trained, records, patients, labels)
    fold_records = [_member_record(trained, m, member_rows[m.name]) for m in trained.members]
    config = trained.config
    summary = arm_summary(trained.task, fold_records, rows, trained.class_names, config.cv.bootstrap,
                          config.train.seed)
    metrics = {"task": trained.task, "primary_metric": task.primary_metric, "main_arm": trained.arm,
               "summary": summary["summary"], "folds": fold_records, "arms": {trained.arm: summary},
               "comparisons": [], "external": True, "model_id": trained.model_id,
               "ensemble_of": [m.name for m in trained.members], "class_names": trained.class_names,
               "n_cases": len(rows), "n_patients": len(set(patients)), "n_skipped": len(outcome.skipped),
               "training_overlap": overlap,
               "skipped_by_reason": outcome.summary["skip_rows_by_reason"],
               "segmentation_grid": "original image grid" if task.uses_mask else None,
               "warnings": warnings}
    site_of = {i.key: i.site for i in inputs.items if i.site}
    if site_of:
        metrics["sites"] = {"column": "site", "scheme": "external", "sites": sorted(set(site_of.values())),
                            "cases_per_site": {s: sum(site_of.get(r["case_id"]) == s for r in rows)
                                               for s in sorted(set(site_of.values()))},
                            "per_site": {trained.arm: site_metrics(trained.task, rows, site_of, trained.class_names,
                                                                   config.cv.bootstrap, config.train.seed)},
                            "comparisons": [], "shift_check": [],
                            "shift_check_note": "not computed for external validation"}
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    result = ExternalResult(out, metrics, rows, member_rows, trained.class_names, warnings)
    write_external_report(result, trained)
    return result
