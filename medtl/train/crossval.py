"""``medtl cv``: patient-level cross-validated fine-tuning of every arm on the same folds.

Resumable: each (arm, fold) writes ``done.json`` when finished and an epoch
checkpoint while training, so re-running on the same RUN folder skips finished folds
and continues an interrupted one; the final metrics equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import Config, dump_config
from ..data.dataset import PreparedCase, prepare_cases
from ..data.manifest import read_manifest
from ..data.splits import Fold, inner_split, make_folds
from ..errors import ConfigError, InputError
from ..evaluate.metrics import classification_metrics, mean_case_metrics, segmentation_case_metrics
from ..evaluate.summary import arm_summary, compare_arms, primary_metric, verdict_line
from ..models import create_model
from ..models.weights import WeightsError
from ..outputs import write_atomic, write_csv, write_json
from ..progress import progress_bar
from .arms import Arm, resolve_arms
from .checkpoint import load_weights, save_weights
from .loop import fit, predict, resolve_device
from .provenance import environment, write_training_images

log = logging.getLogger("medtl")


@dataclass
class CVRun:
    """Everything the outputs and the report are made from."""

    config: Config
    out: Path
    class_names: list[str]
    cases: list[PreparedCase]
    folds: list[Fold]
    arms: dict[str, dict] = field(default_factory=dict)  # name -> {"folds": [...], "rows": [...], ...}
    warnings: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    source: object = None  # SourceModel once the source stage ran
    verdicts: list[str] = field(default_factory=list)


def _check_run_folder(out: Path, resolved: str) -> None:
    existing = out / "config.yaml"
    if existing.exists() and existing.read_text() != resolved:
        raise ConfigError(f"{out} holds a run with a different config; use a new --out folder (or delete {out}) "
                          "so that results of different settings are never mixed")
    write_atomic(existing, resolved)


def _source_model(run: "CVRun"):
    """The source-stage checkpoint, trained once per run (or reused from the cache)."""
    if run.source is None:
        from .pretrain import train_source_model

        run.source = train_source_model(run.config, progress=False)
        state = "reused from cache" if run.source.reused else "trained now"
        run.warnings.append(f"source model {run.source.fingerprint} {state}: {run.source.summary['n_cases']} source "
                            f"cases, classes {run.source.summary['class_names']}")
    return run.source


def _num_seg_classes(cases: list[PreparedCase]) -> int:
    return max(2, int(max(int(c.mask.max()) for c in cases)) + 1)


def _fold_seed(config: Config, fold: Fold) -> int:
    return config.train.seed + 1000 * fold.repeat + fold.fold


def _case_rows(run: CVRun, arm: str, fold: Fold, cases: list[PreparedCase], outputs: np.ndarray,
               num_classes: int) -> list[dict]:
    rows = []
    for case, output in zip(cases, outputs):
        row = {"case_id": case.case_id, "patient_key": case.patient_key, "repeat": fold.repeat,
               "fold": fold.fold, "arm": arm}
        if run.config.task == "classification":
            row["label"], row["label_index"] = run.class_names[case.label], case.label
            row.update({f"prob_{name}": float(p) for name, p in zip(run.class_names, output)})
        else:
            row["label"] = "mask"
            row.update(segmentation_case_metrics(output, case.mask[0], num_classes, case.spacing))
        rows.append(row)
    return rows


def _fold_metrics(run: CVRun, rows: list[dict]) -> dict:
    if run.config.task == "classification":
        labels = np.array([r["label_index"] for r in rows])
        probs = np.array([[r[f"prob_{n}"] for n in run.class_names] for r in rows])
        return classification_metrics(labels, probs)
    return mean_case_metrics(rows)


def _run_fold(run: CVRun, arm: Arm, fold: Fold, num_classes: int, advance) -> dict:
    fold_dir = run.out / "arms" / arm.name / f"repeat{fold.repeat}_fold{fold.fold}"
    done = fold_dir / "done.json"
    epochs = arm.config.train.epochs
    if done.exists():
        advance(epochs)
        return json.loads(done.read_text())
    config, seed = arm.config, _fold_seed(arm.config, fold)
    pretrained = config.model.pretrained
    if pretrained == "source":
        pretrained = str(_source_model(run).path)
    torch.manual_seed(seed)
    model = create_model(config.model.backbone, dims=config.data.dims, num_classes=num_classes, in_channels=1,
                         task=config.task, pretrained=pretrained, input_adapt=config.model.input_adapt,
                         inflate=config.model.inflate, dropout=config.model.dropout,
                         class_names=run.class_names if config.task == "classification" else None)
    model.adaptation.save(fold_dir / "adaptation.json")
    groups = [c.group_key for c in run.cases]
    strata = [c.label if c.label is not None else int(c.mask.any()) for c in run.cases]
    train_index, inner_index = fold.train, ()
    if config.train.selection == "best_inner":
        train_index, inner_index = inner_split(groups, strata, fold.train, config.train.inner_fraction, seed)
    train_cases = [run.cases[i] for i in train_index]
    inner_cases = [run.cases[i] for i in inner_index]
    val_cases = [run.cases[i] for i in fold.val]

    def inner_score(outputs: np.ndarray, cases: list[PreparedCase]) -> float:
        return _fold_metrics(run, _case_rows(run, arm.name, fold, cases, outputs, num_classes))[
            primary_metric(config.task)]

    def on_epoch(record: dict) -> None:
        inner = f" inner {primary_metric(config.task)} {record['inner_score']:.3f}" if "inner_score" in record else ""
        advance(1, f"{arm.name} r{fold.repeat} fold {fold.fold} epoch {record['epoch'] + 1}/{epochs} "
                   f"loss {record['train_loss']:.3f}{inner}")

    result = fit(model, train_cases, config, fold_dir / "state.pt", seed, inner_cases or None,
                 inner_score if inner_cases else None, on_epoch)
    if config.train.selection == "best_inner" and (fold_dir / "best.safetensors").exists():
        load_weights(fold_dir / "best.safetensors", model)
    save_weights(fold_dir / "model.safetensors", model, {**model.describe(), "class_names": json.dumps(run.class_names),
                                                         "selected_epoch": result.selected_epoch})
    device = resolve_device(config.train.device)
    outputs = predict(model, val_cases, config, device)
    rows = _case_rows(run, arm.name, fold, val_cases, outputs, num_classes)
    if config.task == "segmentation":
        _save_overlays(fold_dir / "overlays.npz", val_cases, outputs)
    record = {"fold": fold.fold, "repeat": fold.repeat, "n_train": len(train_cases), "n_inner": len(inner_cases),
              "n_val": len(val_cases), "n_val_patients": len({c.patient_key for c in val_cases}),
              "selected_epoch": result.selected_epoch, **_fold_metrics(run, rows)}
    finished = {"record": record, "rows": rows, "history": result.history,
                "adaptation": model.adaptation.to_dict(),
                "notes": [f"{arm.name} repeat {fold.repeat} fold {fold.fold}: {n}" for n in result.notes]}
    write_json(done, finished)
    (fold_dir / "state.pt").unlink(missing_ok=True)  # the finished fold needs only its weights
    return finished


def _save_overlays(path: Path, cases: list[PreparedCase], outputs: np.ndarray, count: int = 2) -> None:
    """A few (image, truth, prediction) slices for the report; the slice with most foreground."""
    chosen = sorted(range(len(cases)), key=lambda i: -int(cases[i].mask.sum()))[:count]
    images, truths, preds = [], [], []
    for i in chosen:
        image, truth, pred = cases[i].image[0], cases[i].mask[0], outputs[i]
        if image.ndim == 3:
            k = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(1)))
            image, truth, pred = image[k], truth[k], pred[k]
        images.append(image)
        truths.append(truth)
        preds.append(pred)
    np.savez_compressed(path, image=np.stack(images), truth=np.stack(truths), pred=np.stack(preds))


def _write_splits(run: CVRun) -> None:
    rows = [{"case_id": run.cases[i].case_id, "patient_key": run.cases[i].patient_key, "repeat": f.repeat,
             "fold": f.fold} for f in run.folds for i in f.val]
    write_csv(run.out / "splits.csv", ["case_id", "patient_key", "repeat", "fold"], rows)


def _write_predictions(run: CVRun) -> None:
    task = run.config.task
    metric_columns = ([f"prob_{n}" for n in run.class_names] if task == "classification"
                      else ["dice", "iou", "hd95"])
    columns = ["case_id", "patient_key", "fold", "arm", "label", *metric_columns]
    if run.config.cv.repeats > 1:
        columns.insert(2, "repeat")
    rows = [{k: row[k] for k in columns} for arm in run.arms.values() for row in arm["rows"]]
    write_csv(run.out / "predictions.csv", columns, rows)


def run_cv(config: Config, out: str | Path, progress: bool = True) -> CVRun:
    """Run (or resume) cross-validation and write every output into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if config.data.manifest is None:
        raise ConfigError("data.manifest is not set; point it at a manifest CSV (see README, Manifest)")
    _check_run_folder(out, dump_config(config))
    manifest = read_manifest(config.data.manifest, config.task, config.cv.group_by)
    cases, skipped = prepare_cases(manifest, config, out / "cache", progress)
    if not cases:
        raise InputError(f"no usable case in {manifest.path}; reasons: {sorted({s['reason'] for s in skipped})}")
    strata = [c.label if c.label is not None else int(c.mask.any()) for c in cases]
    folds = make_folds([c.group_key for c in cases], strata, config.cv.folds, config.train.seed, config.cv.repeats,
                       need_all_classes=config.task == "classification")
    run = CVRun(config, out, manifest.class_names, cases, folds)
    run.warnings += [f"case {s['case_id']} skipped: {s['reason']} ({s['detail']})" for s in skipped]
    run.warnings += sorted({f"{note} in {sum(note in c.notes for c in cases)} case(s)"
                            for c in cases for note in c.notes})
    _write_splits(run)
    num_classes = len(manifest.class_names) if config.task == "classification" else _num_seg_classes(cases)
    arms = resolve_arms(config)
    total = sum(a.config.train.epochs for a in arms) * len(folds)
    with progress_bar("cross-validation", total, progress) as advance:
        for arm in arms:
            try:
                finished = [_run_fold(run, arm, fold, num_classes, advance) for fold in folds]
            except WeightsError as exc:
                if arm.required:
                    raise
                message = f"arm '{arm.name}' skipped: {exc}"
                run.warnings.append(message)
                log.warning(message)
                advance(arm.config.train.epochs * len(folds))
                continue
            run.warnings += [note for f in finished for note in f.get("notes", [])]
            run.arms[arm.name] = {"folds": [f["record"] for f in finished],
                                  "rows": [r for f in finished for r in f["rows"]],
                                  "histories": [f["history"] for f in finished],
                                  "adaptation": finished[0]["adaptation"], "config": arm.config}
    _summarise(run)
    _write_outputs(run, skipped)
    return run


def _summarise(run: CVRun) -> None:
    task, boot, seed = run.config.task, run.config.cv.bootstrap, run.config.train.seed
    probs = [f"prob_{n}" for n in run.class_names]
    arms = {name: arm_summary(task, arm["folds"], arm["rows"], probs, boot, seed) for name, arm in run.arms.items()}
    main = next(iter(run.arms))
    comparisons = [compare_arms(task, main, run.arms[main]["rows"], name, arm["rows"], probs, boot, seed)
                   for name, arm in run.arms.items() if name != main]
    run.metrics = {"task": task, "primary_metric": primary_metric(task), "main_arm": main,
                   "summary": arms[main]["summary"], "folds": arms[main]["folds"], "arms": arms,
                   "comparisons": comparisons, "class_names": run.class_names,
                   "n_cases": len(run.cases), "n_patients": len({c.patient_key for c in run.cases}),
                   "warnings": run.warnings}
    run.verdicts = [verdict_line(c) for c in comparisons]


def _write_outputs(run: CVRun, skipped: list[dict]) -> None:
    from ..evaluate.report import write_report

    _write_predictions(run)
    write_json(run.out / "metrics.json", run.metrics)
    if skipped:
        write_csv(run.out / "skipped_cases.csv", ["case_id", "reason", "detail"], skipped)
    weights = {name: [{"file": arm["adaptation"]["file"], "sha256": arm["adaptation"]["sha256"],
                       "source": arm["adaptation"]["source"]}] for name, arm in run.arms.items()}
    write_json(run.out / "env.json", environment(run.config.train.seed, str(resolve_device(run.config.train.device)),
                                                 [c.content_hash for c in run.cases], weights))
    write_training_images(run.out / "training_images.json", [c.image_hash for c in run.cases])
    write_report(run)
