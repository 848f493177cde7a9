"""Training and scoring one fold of one arm (resumable: ``done.json`` marks a finished fold)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Callable, Iterable

import numpy as np
import torch

from ..arms import Arm
from ..data.dataset import PreparedCase
from ..data.manifest import sort_labels
from ..data.overlap import image_keys, relations
from ..data.splits import Fold
from ..domain.targets import TargetImage
from ..errors import InputError
from ..models import create_model
from ..models.checkpoint import load_weights, save_weights
from ..models.device import resolve_device
from ..models.heads import order_classes
from ..models.lora import merge_lora
from ..plumbing.atomic import write_json
from ..results import FoldResult
from ..rundir import FoldDir
from ..tasks import task_of
from ..train import distributed as ddp
from ..train.loop import fit, predict_each
from ..train.methods import build_method
from .cv_calibration import calibrate_fold, calibration_enabled
from .fold_roles import fold_roles


def write_fold_images(path, train: list[PreparedCase], inner: list[PreparedCase], val: list[PreparedCase],
                      targets: list[TargetImage], check_images: bool,
                      reference: list[PreparedCase] | None = None) -> None:
    """``fold_images.json``: pixel hashes and patient keys of each role, so anyone can check the fold's sets.

    ``reference`` (leave-one-site-out): the training sites' held-out patients the unseen-site
    drop is measured against (the selection cases themselves unless ``best_inner`` chose on them).

    Refuses to train a fold whose scored cases share a patient (or, with
    ``check_images``, an image: identical pixels or network input, ``medtl.data.overlap``) with its
    training, model-selection or reference cases: a
    leak the folds were built to exclude. (K-fold runs report identical images filed
    under different patients as a warning instead.)
    """
    roles = {"train": train, "selection": inner, "scored": val}
    if reference is not None:
        roles["reference"] = reference
    scored_patients = {c.group_key for c in val}
    scored_keys = image_keys(val) if check_images else None
    for role in [r for r in roles if r != "scored"]:
        shared_images = (sum(r.is_copy for r in relations(image_keys(roles[role]), scored_keys))
                         if scored_keys is not None else 0)
        shared_patients = sum(c.group_key in scored_patients for c in roles[role])
        if shared_images or shared_patients:
            raise RuntimeError(f"the fold's {role} set shares {shared_patients} patient(s) and {shared_images} "
                               "image(s) (identical pixels or network input) with its scored cases; refusing to "
                               "train a leaky fold")
    write_json(path, {**{role: {"image_hashes": sorted(c.image_hash for c in members),
                                "patient_keys": sorted({c.patient_key for c in members})}
                         for role, members in roles.items()},
                      "unlabelled_target": {"image_hashes": sorted(t.image_hash for t in targets)}})


def fold_seed(seed: int, fold: Fold) -> int:
    """The seed of one (repeat, fold): every arm trains a fold with the same seed."""
    return seed + 1000 * fold.repeat + fold.fold


REPLICATE_STRIDE = 1_000_003  # seeds of training replicates (cv.seeds) never meet another fold's seed


def training_seed(config, fold: Fold) -> int:
    """The seed of the model's initialisation, batch order and augmentation: the fold's seed, moved by the arm's
    training replicate (``cv.seeds``); the data splits of the fold keep ``fold_seed``."""
    return fold_seed(config.train.seed, fold) + REPLICATE_STRIDE * config.train.replicate


def case_rows(arm: str, fold: Fold, cases: list[PreparedCase], outputs: Iterable, task,
              class_names, num_classes) -> list[dict]:
    """Out-of-fold rows: keys, fold, arm and the task's per-case values (multitask: a row per task)."""
    return [{"case_id": case.case_id, "patient_key": case.patient_key, "repeat": fold.repeat, "fold": fold.fold,
             "arm": arm, **row}
            for case, output in zip(cases, outputs) for row in task.case_rows(case, output, class_names, num_classes)]


def arm_num_classes(arm: Arm, class_names, cases: list[PreparedCase]):
    """Output channels of the arm's head(s), from the scored cases: an int, or ``{task: int}`` for multitask
    (a single-task control arm of a multitask run has only its own task's). Used by every path that builds an
    arm's model (sequential, cluster worker, DDP follower), so they cannot disagree."""
    return task_of(arm.config).num_classes(class_names, cases)


def build_fold_model(config, task, num_classes, class_names, pretrained: str):
    """The arm's model for one fold: backbone, the task's head(s), starting weights.

    A fresh classification head starts as it would with the classes in their sorted order, its
    outputs then moved to the run's class order: which class ``data.positive_class`` names (the
    run's order puts it last) changes no weight, so the same folds give the same probabilities
    per class, and sensitivity and specificity trade places exactly.
    """
    model = create_model(config.model.backbone, dims=config.data.dims, num_classes=num_classes, in_channels=1,
                         task=task.head, pretrained=pretrained, input_adapt=config.model.input_adapt,
                         inflate=config.model.inflate, dropout=config.model.dropout,
                         class_names=task.checkpoint_class_names(class_names), task_kinds=getattr(task, "kinds", None))
    if "head.*" in model.adaptation.new:  # freshly initialised, not a checkpoint's head
        names = class_names if isinstance(class_names, dict) else {"": class_names}
        for head_name, order in names.items():
            if order and list(order) != sort_labels(set(order)):
                sorted_names = sort_labels(set(order))
                order_classes(model.head, [sorted_names.index(n) for n in order], head_name)
    return model


def only_site(cases: list[PreparedCase], site: str) -> list[PreparedCase]:
    """The training cases of one site (``train.only_site``), refused when the fold has none."""
    kept = [c for c in cases if c.site == site]
    if not kept:
        sites = sorted({c.site for c in cases})
        raise InputError(f"train.only_site is '{site}' but this fold's training patients come from sites {sites}; "
                         "use one of them (the manifest's site column)")
    return kept


def starts_from_prototypes(config) -> bool:
    """A classification head fine-tuned from a prototypical-network source starts from the class prototypes
    (``meta.prototype_head``; other heads are left as they are)."""
    source = config.source
    return (config.model.pretrained == "source" and source is not None and source.task == "protonet"
            and config.meta.prototype_head)


def run_fold(arm: Arm, fold: Fold, folder: FoldDir, cases: list[PreparedCase], class_names: list[str],
             num_classes: int, pretrained: str, on_epoch: Callable[[dict], None],
             on_batch: Callable[[int, int], None] | None = None, targets: list[TargetImage] | None = None,
             held_out_site: bool = False, distributed: bool = False) -> FoldResult:
    """Train ``arm`` on ``fold`` (or resume it) and score its validation cases; returns its result.

    ``targets``: the unlabelled target images of an adaptation arm (DANN, re-weighting).
    ``held_out_site`` (leave-one-site-out): identical images count as leaks too, and the
    model-selection cases (the training sites' held-out patients) are scored: each test site's drop is measured
    against them. ``distributed``: every process of a ``torchrun`` group runs this together (DDP training,
    partitioned prediction); only rank 0 writes.
    """
    if folder.done.exists() and not distributed:
        return folder.read_result()
    writes = ddp.is_main()
    config, seed, train_seed = arm.config, fold_seed(arm.config.train.seed, fold), training_seed(arm.config, fold)
    task = task_of(config)
    torch.manual_seed(train_seed)
    model = build_fold_model(config, task, num_classes, class_names, pretrained)
    if writes:
        model.adaptation.save(folder.adaptation)
    groups = [c.group_key for c in cases]
    strata = [task.stratum(c) for c in cases]
    roles = fold_roles(fold, groups, strata, config, seed, held_out_site)
    train_index, inner_index, reference_index = roles.train, roles.selection, roles.reference
    train_cases = [cases[i] for i in train_index]
    inner_cases = [cases[i] for i in inner_index]
    if config.train.only_site is not None:  # a local-<site> arm: that site's training patients only
        train_cases, inner_cases = only_site(train_cases, config.train.only_site), \
            [c for c in inner_cases if c.site == config.train.only_site]
    reference_cases = [cases[i] for i in reference_index]
    val_cases = [cases[i] for i in fold.val]
    device = ddp.local_device(resolve_device(config.train.device)) if distributed else resolve_device(config.train.device)
    if writes:
        write_fold_images(folder.images, train_cases, inner_cases, val_cases, targets or [], held_out_site,
                          reference_cases if held_out_site else None)
    method = build_method(config)
    method_facts = method.setup(model, train_cases, targets or [], device, train_seed)
    if starts_from_prototypes(config):
        from ..meta.prototype_head import prototype_head

        method_facts = {**method_facts, **prototype_head(model, train_cases, device)}

    def inner_score(outputs: Iterable[np.ndarray], scored: list[PreparedCase]) -> float:
        rows = case_rows(arm.name, fold, scored, outputs, task, class_names, num_classes)
        return task.fold_metrics(rows, class_names)[task.primary_metric]

    seconds: list[float] = []  # of the epochs trained in this process (a resumed fold: the rest only)

    def timed(report: dict) -> None:
        seconds.append(report["seconds"])
        if on_epoch:
            on_epoch(report)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = fit(model, train_cases, config, folder.state, train_seed, inner_cases or None,
                 inner_score if inner_cases else None, timed, on_batch, method, distributed=distributed)
    ddp.barrier()  # rank 0's best.safetensors is on disk before anyone reads it
    if config.train.selection == "best_inner" and folder.best.exists():
        if result.tuned is not None:  # PEFT: the file holds the tuned tensors, bound to this base
            result.tuned.load(folder.best)
        else:
            load_weights(folder.best, model)
    merge_lora(model)  # lora: adapters folded into the weights; the saved model is a plain network
    if writes:
        save_weights(folder.model, model, {**model.describe(), "class_names": json.dumps(class_names),
                                           "selected_epoch": result.selected_epoch})
    # one case at a time: native-extent label maps are scored and dropped, only the overlay cases' are kept
    shown = set(task.overlay_cases(val_cases))
    rows, overlay_outputs = [], {}
    for index, output in enumerate(predict_each(model, val_cases, config, device, distributed)):
        rows += case_rows(arm.name, fold, [val_cases[index]], [output], task, class_names, num_classes)
        if index in shown:
            overlay_outputs[index] = output
    if writes:
        task.save_overlays(folder.overlays, val_cases, overlay_outputs)
    calibration = None
    if calibration_enabled(config):  # fitted on the selection split (training patients), never the scored ones
        calibration_rows = case_rows(arm.name, fold, inner_cases, predict_each(model, inner_cases, config, device,
                                                                               distributed),
                                     task, class_names, num_classes)
        calibration = calibrate_fold(config, rows, calibration_rows, class_names,
                                     {c.case_id: c.site for c in [*val_cases, *inner_cases]})
    record = {"fold": fold.fold, "repeat": fold.repeat, "n_train": len(train_cases), "n_inner": len(inner_cases),
              "label_fraction": config.train.label_fraction,
              "n_labelled_patients": roles.labelled_patients(groups), "labelled_share": roles.labelled_share(groups),
              "n_val": len(val_cases), "n_val_patients": len({c.patient_key for c in val_cases}),
              "selected_epoch": result.selected_epoch, **task.fold_metrics(rows, class_names)}
    if result.privacy:  # DP-SGD: what this fold's training spent (the privacy unit: one training image)
        record["privacy"] = result.privacy
        max_images = max(Counter(c.patient_key for c in train_cases).values(), default=1)
        record["privacy"]["max_images_per_patient"] = max_images
    cost = {"seconds_per_epoch": round(float(np.mean(seconds)), 3)} if seconds else {}
    if device.type == "cuda":
        cost["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if calibration is not None:
        record["calibration"] = calibration
    if held_out_site:
        record.update(test_site=val_cases[0].site, n_reference=len(reference_cases),
                      reference_is_selection=reference_index == inner_index)
    inner_rows = []
    if reference_cases:
        inner_rows = case_rows(arm.name, fold, reference_cases, predict_each(model, reference_cases, config, device,
                                                                             distributed),
                               task, class_names, num_classes)
    share_note = roles.share_note(groups, config.train.label_fraction)
    finished = FoldResult(record, rows, result.history, inner_rows, method_facts, model.adaptation.to_dict(),
                          [f"{arm.name} repeat {fold.repeat} fold {fold.fold}: {n}"
                           for n in [*result.notes, *([share_note] if share_note else [])]], cost)
    if writes:
        folder.write_result(finished)
        if not config.train.keep_state:
            folder.state.unlink(missing_ok=True)  # the finished fold needs only its weights
    ddp.barrier()  # the fold is on disk before any rank moves on
    return finished
