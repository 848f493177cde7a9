"""Training and scoring one fold of one arm (resumable: ``done.json`` marks a finished fold)."""

from __future__ import annotations

import json
from typing import Callable, Iterable

import numpy as np
import torch

from ..arms import Arm
from ..data.dataset import PreparedCase
from ..data.splits import Fold, inner_split
from ..models import create_model
from ..models.checkpoint import load_weights, save_weights
from ..models.device import resolve_device
from ..plumbing.atomic import write_json
from ..rundir import FoldDir
from ..tasks import get_task
from ..train.loop import fit, predict_each


def fold_seed(seed: int, fold: Fold) -> int:
    """The seed of one (repeat, fold): every arm trains a fold with the same seed."""
    return seed + 1000 * fold.repeat + fold.fold


def case_rows(arm: str, fold: Fold, cases: list[PreparedCase], outputs: Iterable[np.ndarray], task_name: str,
              class_names: list[str], num_classes: int) -> list[dict]:
    """Out-of-fold rows: keys, fold, arm and the task's per-case values."""
    task = get_task(task_name)
    return [{"case_id": case.case_id, "patient_key": case.patient_key, "repeat": fold.repeat, "fold": fold.fold,
             "arm": arm, **task.case_row(case, output, class_names, num_classes)}
            for case, output in zip(cases, outputs)]


def run_fold(arm: Arm, fold: Fold, folder: FoldDir, cases: list[PreparedCase], class_names: list[str],
             num_classes: int, pretrained: str, on_epoch: Callable[[dict], None],
             on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Train ``arm`` on ``fold`` (or resume it) and score its validation cases; returns the done record."""
    if folder.done.exists():
        return folder.read_done()
    config, seed = arm.config, fold_seed(arm.config.train.seed, fold)
    task = get_task(config.task)
    torch.manual_seed(seed)
    model = create_model(config.model.backbone, dims=config.data.dims, num_classes=num_classes, in_channels=1,
                         task=task.head, pretrained=pretrained, input_adapt=config.model.input_adapt,
                         inflate=config.model.inflate, dropout=config.model.dropout,
                         class_names=task.checkpoint_class_names(class_names))
    model.adaptation.save(folder.adaptation)
    train_index, inner_index = fold.train, fold.inner  # fixed splits: the given val set scores every epoch
    if config.train.selection == "best_inner" and not fold.inner:
        groups = [c.group_key for c in cases]
        strata = [task.stratum(c) for c in cases]
        train_index, inner_index = inner_split(groups, strata, fold.train, config.train.inner_fraction, seed)
    train_cases = [cases[i] for i in train_index]
    inner_cases = [cases[i] for i in inner_index]
    val_cases = [cases[i] for i in fold.val]

    def inner_score(outputs: Iterable[np.ndarray], scored: list[PreparedCase]) -> float:
        rows = case_rows(arm.name, fold, scored, outputs, config.task, class_names, num_classes)
        return task.fold_metrics(rows, class_names)[task.primary_metric]

    result = fit(model, train_cases, config, folder.state, seed, inner_cases or None,
                 inner_score if inner_cases else None, on_epoch, on_batch)
    if config.train.selection == "best_inner" and folder.best.exists():
        load_weights(folder.best, model)
    save_weights(folder.model, model, {**model.describe(), "class_names": json.dumps(class_names),
                                       "selected_epoch": result.selected_epoch})
    # one case at a time: native-extent label maps are scored and dropped, only the overlay cases' are kept
    shown = set(task.overlay_cases(val_cases))
    rows, overlay_outputs = [], {}
    for index, output in enumerate(predict_each(model, val_cases, config, resolve_device(config.train.device))):
        rows += case_rows(arm.name, fold, [val_cases[index]], [output], config.task, class_names, num_classes)
        if index in shown:
            overlay_outputs[index] = output
    task.save_overlays(folder.overlays, val_cases, overlay_outputs)
    record = {"fold": fold.fold, "repeat": fold.repeat, "n_train": len(train_cases), "n_inner": len(inner_cases),
              "n_val": len(val_cases), "n_val_patients": len({c.patient_key for c in val_cases}),
              "selected_epoch": result.selected_epoch, **task.fold_metrics(rows, class_names)}
    finished = {"record": record, "rows": rows, "history": result.history,
                "adaptation": model.adaptation.to_dict(),
                "notes": [f"{arm.name} repeat {fold.repeat} fold {fold.fold}: {n}" for n in result.notes]}
    write_json(folder.done, finished)
    if not config.train.keep_state:
        folder.state.unlink(missing_ok=True)  # the finished fold needs only its weights
    return finished
