"""The sites part of a ``medtl cv`` run: per-site metrics, the drop at unseen sites, the shift check.

Runs when the manifest has a ``site`` column (any scheme); the drop needs
``cv.scheme: leave_site_out``, where each fold's scored cases are one unseen site.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..domain.features import encoder_features
from ..domain.shift import site_separability
from ..evaluate.sites import site_comparisons, site_drop, site_mean_comparison, site_metrics
from ..models import create_model
from ..models.device import resolve_device
from ..tasks import task_of
from .cv_metrics import default_pairs
from .cv_tasks import primary_view

log = logging.getLogger("medtl")


def _model_features(run, arm: str, pretrained: str) -> np.ndarray:
    config = run.arms[arm].config
    task = task_of(config)
    num_classes = task.num_classes(run.class_names, run.cases)
    model = create_model(config.model.backbone, dims=config.data.dims, num_classes=num_classes, task=task.head,
                         pretrained=pretrained, input_adapt=config.model.input_adapt, inflate=config.model.inflate,
                         download=False, task_kinds=getattr(task, "kinds", None))
    return encoder_features(model, run.cases_of(arm), resolve_device(config.train.device))


def shift_checks(run, sites: list[str], patients: list[str]) -> list[dict]:
    """Site separability from the main arm's starting encoder and from each arm's first fold model."""
    boot, seed = run.config.cv.bootstrap, run.config.train.seed
    main = next(iter(run.arms))
    checks = []
    start = run.config.model.pretrained
    label = f"encoder as fine-tuning starts ({start} weights)"
    if start == "source":
        from .pretrain import source_key

        model = run.sources.get(source_key(run.config))
        start = str(model.path) if model is not None else None
    try:
        if start is None:
            raise LookupError("the source model was not loaded (every fold was already finished)")
        checks.append({"features": label, **site_separability(_model_features(run, main, start), sites, patients,
                                                               boot, seed)})
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not fail a finished run; the gap is reported
        log.warning("shift check on the starting encoder skipped: %s", exc)
        checks.append({"features": label, "auc": math.nan, "ci95": [math.nan, math.nan], "n_sites": len(set(sites)),
                       "n_cases": len(sites), "note": f"not computed: {str(exc)[:120]}"})
    for name in run.arms:
        folds = run.rundir.folds(name)
        if not folds or not folds[0].model.exists():
            continue
        features = _model_features(run, name, str(folds[0].model))
        checks.append({"features": f"arm {name}, fine-tuned model of {folds[0].name}",
                       **site_separability(features, sites, patients, boot, seed)})
    return checks


def site_verdicts(run) -> None:
    """Leave one site out: the run's comparisons become the mean of per-site differences (patients resampled
    within sites); the all-sites-pooled comparisons stay in ``pooled_comparisons``, labelled as sensitive to score
    scales. (A multi-task run: its first task, the one the verdict reports.)"""
    if run.config.cv.scheme != "leave_site_out" or not run.metrics.get("comparisons"):
        return
    config = run.config
    task, rows_of, names = primary_view(config, run.class_names)
    site_of = {c.case_id: c.site for c in run.cases}
    pooled = run.metrics["comparisons"]
    by_site = [site_mean_comparison(task, c["a"], rows_of(run.arms[c["a"]].rows), c["b"],
                                    rows_of(run.arms[c["b"]].rows), site_of, names, config.cv.bootstrap,
                                    config.train.seed) for c in pooled]
    note = ("every site pooled into one metric: differences in score scale between sites move it even when each "
            "site's ranking is the same; the verdict is the mean of per-site differences (comparisons)")
    run.metrics["pooled_comparisons"] = [{**c, "scope": "all sites pooled", "note": note} for c in pooled]
    run.metrics["comparisons"] = by_site
    if "tasks" in run.metrics:
        run.metrics["tasks"][run.metrics["primary_task"]]["comparisons"] = by_site


def drop_reference_is_fair(config, result) -> bool:
    """Whether a leave-one-site-out fold's reference rows were not the ones its epoch was chosen on."""
    if not result.inner_rows:
        return False
    if config.train.selection != "best_inner":
        return True
    return result.record.get("reference_is_selection") is False


def sites_summary(run) -> dict | None:
    """``metrics.json["sites"]`` (docs/sites.md), or ``None`` when the manifest has no site column."""
    site_of = {c.case_id: c.site for c in run.cases if c.site}
    if not site_of:
        return None
    config = run.config
    task, rows_of, names = primary_view(config, run.class_names)  # multitask: the first task
    boot, seed = config.cv.bootstrap, config.train.seed
    arm_rows = {name: rows_of(arm.rows) for name, arm in run.arms.items()}
    arm_rows = {name: rows for name, rows in arm_rows.items() if rows}
    summary = {"column": "site", "scheme": config.cv.scheme, "sites": sorted(set(site_of.values())),
               "cases_per_site": {s: sum(v == s for v in site_of.values()) for s in sorted(set(site_of.values()))},
               "per_site": {name: site_metrics(task, rows, site_of, names, boot, seed)
                            for name, rows in arm_rows.items()},
               "comparisons": site_comparisons(task, default_pairs(run.config, run.arms), arm_rows, site_of, names,
                                               boot, seed)}
    if config.cv.scheme == "leave_site_out":
        summary["drop"], notes = {}, []
        for name, arm in run.arms.items():
            if name not in arm_rows:
                continue
            summary["drop"][name] = {}
            for fold, result in zip(run.folds, arm.folds):
                site = run.cases[fold.val[0]].site
                if not drop_reference_is_fair(arm.config, result):
                    notes.append(f"{name}, test site '{site}': drop not computed: "
                                 + ("its training sites had too few held-out patients to keep a reference apart "
                                    "from the model-selection ones" if result.record.get("n_reference") == 0 else
                                    "this fold was trained before medtl kept the drop's reference apart from the "
                                    "cases train.selection: best_inner chose the epoch on (re-run it in a new "
                                    "folder)"))
                    continue
                summary["drop"][name][site] = site_drop(
                    task, rows_of(result.inner_rows), [r for r in arm_rows[name] if r["fold"] == fold.fold], names,
                    boot, seed)
        if notes:
            summary["drop_notes"] = notes
    if all(run.arms[name].config.data.fixed_size for name in run.arms):
        summary["shift_check"] = shift_checks(run, [c.site for c in run.cases],
                                              [c.group_key for c in run.cases])
    else:
        summary["shift_check"] = []
        summary["shift_check_note"] = "not computed: native-extent (patch mode) cases have no single feature vector"
    return summary
