"""``medtl predict``: stream every item through the run's fold models and commit each result.

Items load in DataLoader workers while the model runs; each finished item is
committed (files renamed into place, then one journal line), so a re-run on the
same ``--out`` continues where an interrupted one stopped. ``predictions.csv``,
``skipped.csv`` and ``predict.json`` are rebuilt from the journal at the end.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._version import __version__
from ..config import Config
from ..errors import InputError, MedtlError
from ..io.reasons import Reason
from ..models.sliding import network_logits
from ..models.trained import TrainedRun
from ..plumbing.atomic import remove_orphan_temps, write_csv, write_json
from ..plumbing.progress import progress_bar
from ..rundir import PredictDir
from .explaining import (
    check_explain,
    explained_class_names,
    explained_task,
    explanation_maps,
    write_explanation,
)
from .inflight import CRASH_LIMIT, InflightMarks
from .items import SKIPPED_COLUMNS, PredictInputs, PredictItem, shard_of
from .journal import Journal
from .loading import ItemDataset, collate_items, quiet_worker
from .outcome import segmentation_record

log = logging.getLogger("medtl")


@dataclass
class PredictOptions:
    """Run options (not experiment settings: those come from the run's config)."""

    device: str = "auto"
    batch_size: int | None = None  # default: the run's train.batch_size
    workers: int | None = None  # default: min(4, cores - 1)
    shard: tuple[int, int] = (1, 1)
    probability_maps: bool = False
    dicom_seg: bool = True
    deidentify_seg: bool = False  # PS3.15 basic profile on the DICOM-SEG (for sharing)
    progress: bool = True
    explain: str | None = None  # gradcam | occlusion: explanation maps of the explained class
    explain_class: str | None = None  # default: the predicted class
    explain_layer: str | None = None  # Grad-CAM layer (default: the deepest encoder stage with spatial extent)
    explain_task: str | None = None  # multitask: the classification head explained (default: the first)
    occlusion_size: int = 16  # occlusion box side in voxels (network grid)
    occlusion_overlap: float = 0.5  # overlap of neighbouring boxes
    calibration: str | None = None  # a `medtl calibrate` folder: prediction-set thresholds fitted for this model


@dataclass
class PredictOutcome:
    """What one predict run wrote: records, CSV rows and the predict.json summary."""

    out: Path
    records: list[dict]  # journal records of this shard's usable items, in input order
    rows: list[dict]  # predictions.csv rows
    skipped: list[dict]  # skipped.csv rows
    summary: dict  # predict.json


def default_workers(device: torch.device | None = None) -> int:
    """Loader processes. With a GPU the model needs no CPU threads: up to 4, one core left for the main process.
    On the CPU the model is the bottleneck (measured on 2 cores: a ResNet-18 ensemble 26 items/s, loading and
    preprocessing 86 items/s), so the loaders get a quarter of the cores, none below 4 cores (items are read
    between batches), and the model's threads the rest (``compute_threads``)."""
    from ..io.parallel import default_workers as cores

    if device is not None and device.type == "cuda":
        return min(4, max(0, cores() - 1))
    return min(4, cores() // 4)


def _job_identity(trained: TrainedRun, inputs: PredictInputs, options: PredictOptions, truth: bool) -> dict:
    from ..io.pseudonym import keyed_hash
    from ..plumbing.hashing import sha256_text

    # what the inputs are now: a resumed job over a changed export or manifest is refused at the start
    listing = sorted(f"{i.key}|{i.n_files}|{i.label}|{i.mask}" + (f"|{sorted(i.labels.items())}" if i.labels else "")
                     for i in inputs.items)
    listing += sorted(f"skip|{row['input']}" for row in inputs.skipped)
    return {"medtl_version": __version__, "run_config_sha256": trained.config_sha256(),
            "model_id": trained.model_id, "input": keyed_hash(str(inputs.source.resolve()), "input"),
            "input_listing": keyed_hash(sha256_text(*listing), "input-listing"),
            "input_kind": inputs.kind, "shard": f"{options.shard[0]}/{options.shard[1]}",
            "probability_maps": options.probability_maps, "dicom_seg": options.dicom_seg,
            "deidentify_seg": options.deidentify_seg, "with_truth": truth,
            "calibration": {head: c.to_dict() for head, c in trained.head_calibrations().items()} or None,
            "explain": [options.explain, options.explain_class, options.explain_layer, options.occlusion_size,
                        options.occlusion_overlap] + ([options.explain_task] if options.explain_task else [])
            if options.explain else None}


def _check_job(out: Path, identity: dict) -> None:
    path = PredictDir(out).job
    if path.exists():
        previous = json.loads(path.read_text())
        differs = sorted(k for k in identity if previous.get(k) != identity[k])
        if differs:
            changed = " (the export folder or manifest changed since this folder was started)" \
                if "input_listing" in differs else ""
            raise InputError(f"{out} holds predictions of a different run, input or settings ({', '.join(differs)} "
                             f"differ{changed}); use a new --out folder, or delete this one to start over")
    else:
        write_json(path, identity)


def _failure_record(item: PredictItem, reason: str, detail: str) -> dict:
    log.warning("%s skipped: %s", item.key, reason)
    return {"key": item.key, "status": "skipped", "reason": reason, "detail": detail, "file_keys": item.file_keys}


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast("cuda", dtype=torch.float16) if enabled and device.type == "cuda" else nullcontext()


@dataclass
class HeadOutputs:
    """One head's softmax outputs for a batch: the ensemble mean ``(batch, classes, ...)`` and, when kept, every
    member's ``(members, batch, classes, ...)``."""

    mean: np.ndarray
    members: np.ndarray | None


@torch.no_grad()
def _member_probabilities(models: list, images: torch.Tensor, device: torch.device, config: Config,
                          keep_members: Callable[[str], bool] = lambda name: True,
                          temperatures: dict[str, list[float]] | None = None) -> dict[str, HeadOutputs]:
    """``{head: HeadOutputs}`` (whole images, or by sliding window in patch mode; a single-task run's one head is
    named ``""``). The ensemble is accumulated in place, member by member, and a head's members are kept only
    when ``keep_members(head)`` (classification: their probabilities are written; segmentation: only to score
    each fold model against a truth mask), so a whole volume's probabilities are held once, not per member.
    ``temperatures``: per head, each member's calibration temperature (its logits are divided by it)."""
    if config.data.fixed_size:
        images = images.to(device, non_blocking=True)
    totals: dict[str, torch.Tensor] = {}
    members: dict[str, np.ndarray] = {}
    for index, model in enumerate(models):
        with _autocast(device, config.train.amp):
            logits = network_logits(model, images, config.data, device)
        for name, value in (logits.items() if isinstance(logits, dict) else [("", logits)]):
            scale = temperatures[name][index] if temperatures and name in temperatures else 1.0
            probabilities = torch.softmax(value.float() / scale, dim=1).cpu()
            del value
            if keep_members(name):
                if name not in members:
                    members[name] = np.empty((len(models), *probabilities.shape), dtype=np.float32)
                members[name][index] = probabilities.numpy()
            if name in totals:
                totals[name] += probabilities
            else:
                totals[name] = probabilities
        del logits
    return {name: HeadOutputs(total.div_(len(models)).numpy(), members.get(name)) for name, total in totals.items()}


def _prediction_memory_problem(loaded: dict, trained: TrainedRun, truth: bool) -> str | None:
    """The memory guard of sliding-window segmentation (``medtl.io.guards.prediction_problem``)."""
    from ..io.guards import prediction_problem

    for task, _, classes in trained.heads().values():
        if task.uses_mask:
            kept = len(trained.members) if truth else 0
            return prediction_problem(loaded["image"].shape[1:], loaded["input_shape"], int(classes), kept)
    return None


def _explained(trained: TrainedRun, options: PredictOptions, outputs: dict, models: list, images: torch.Tensor,
               device: torch.device) -> tuple[str | None, np.ndarray | None, list[int]]:
    """``(explained task, maps, classes)``: explanation maps of the batch (``None`` without ``--explain``)."""
    if not options.explain:
        return None, None, []
    task = explained_task(trained, options)
    names = explained_class_names(trained, options)
    ensemble = outputs[task or ""].mean
    classes = [names.index(options.explain_class) if options.explain_class else int(np.argmax(p)) for p in ensemble]
    return task or "", explanation_maps(models, images.to(device), classes, options, task=task), classes


def _process_batch(batch: list[dict], todo: list[PredictItem], models: list, trained: TrainedRun, out: Path,
                   options: PredictOptions, device: torch.device, truth: bool) -> list[dict]:
    records = [_failure_record(todo[r["index"]], *r["error"]) for r in batch if "error" in r]
    ready = [r for r in batch if "error" not in r]
    if not ready:
        return records
    if not trained.config.data.fixed_size:  # one native-extent volume per batch: can its prediction be held?
        problem = _prediction_memory_problem(ready[0], trained, truth)
        if problem:
            return records + [_failure_record(todo[ready[0]["index"]], Reason.TOO_LARGE.name, problem)]
    images = torch.stack([r["image"] for r in ready])
    heads = trained.heads()
    calibrations = trained.head_calibrations()
    outputs = _member_probabilities(models, images, device, trained.config,
                                    keep_members=lambda name: truth or not heads[name][0].uses_mask,
                                    temperatures={head: c.temperatures for head, c in calibrations.items()})
    sites = [todo[r["index"]].site for r in ready]  # the manifest's site column (conformal.by: site)
    sets = {head: c.sets.sets(outputs[head].mean, sites) for head, c in calibrations.items() if c.sets}
    explained, maps, classes = _explained(trained, options, outputs, models, images, device)
    for i, loaded in enumerate(ready):
        item = todo[loaded["index"]]
        notes = list(loaded["notes"])
        record = {"key": item.key, "patient_key": loaded["patient_key"], "n_files": item.n_files,
                  "label": item.label, "manifest_row": item.manifest_row}
        if loaded.get("image_keys"):
            record.update(loaded["image_keys"])  # evaluate: is this image (or a copy of it) one the run trained on?
        for name, (task, names, count) in trained.heads().items():
            head = outputs[name]
            members = head.members[:, i] if head.members is not None else None
            if not task.uses_mask:
                entry = {"probs": head.mean[i].tolist(), "member_probs": members.tolist()}
                if name in sets:
                    entry["prediction_set"] = [names[k] for k in sets[name][i]]
                if maps is not None and name == explained:
                    entry.update(explain_file=write_explanation(item.key, loaded, maps[i], out, options.explain),
                                 explained_class=names[classes[i]])
            else:  # a multitask case without a truth mask is not scored on it
                entry = segmentation_record(item.key, loaded, head.mean[i], members, trained, out,
                                            options.probability_maps, options.dicom_seg,
                                            truth and loaded["truth_mask"] is not None, notes, options.deidentify_seg,
                                            names, count)
            if name:
                record.setdefault("tasks", {})[name] = {**entry, "label": item.labels.get(name)}
            else:
                record.update(entry)
        record.update(status="warn" if notes else "ok", reasons=";".join(notes))
        records.append(record)
    return records


def _skip_crashing(items: list[PredictItem], journal: Journal, marks: InflightMarks) -> set[str]:
    """Record series that killed the loader ``CRASH_LIMIT`` times; return the other suspects."""
    suspects = marks.suspects()
    for item in items:
        attempts = suspects.get(item.key, 0)
        if attempts >= CRASH_LIMIT and item.key not in journal:
            journal.append(_failure_record(item, Reason.LOADER_CRASHED.name,
                                           f"the process died {attempts} times while reading this series"))
            marks.end(item.key)
    return {key for key, attempts in suspects.items() if attempts < CRASH_LIMIT}


def _batches(loader):
    """Iterate ``loader``; a loader process that died becomes a one-line error that says how to go on."""
    try:
        yield from loader
    except RuntimeError as exc:
        if "DataLoader worker" not in str(exc):
            raise
        raise MedtlError("a loader process died while reading a series (usually a crash in a native image "
                         "decoder); re-run the same command to resume: a series that crashes the loader twice is "
                         f"skipped as {Reason.LOADER_CRASHED.name}") from exc




def _prediction_row(record: dict, trained: TrainedRun, key_column: str, with_files: bool, truth: bool) -> dict:
    row = {key_column: record["key"], "patient_key": record["patient_key"]}
    if with_files:
        row["n_files"] = record["n_files"]
    else:  # a manifest's line: how a row joins back to the user's table (no patient data)
        row["manifest_row"] = record.get("manifest_row", "")
    row.update(trained.task.prediction_values(record, trained.class_names, truth))
    for head in trained.head_calibrations():
        entry = record["tasks"][head] if head else record
        if "prediction_set" in entry:
            prefix = f"{head}." if head else ""
            row.update({f"{prefix}prediction_set": "|".join(entry["prediction_set"]),
                        f"{prefix}set_size": len(entry["prediction_set"])})
    row.update(model_id=trained.model_id, status=record["status"], reasons=record["reasons"])
    return row


def prediction_columns(trained: TrainedRun, key_column: str, with_files: bool, truth: bool,
                       explain: bool = False, explained: str | None = None) -> list[str]:
    """Columns of ``predictions.csv`` for this run's task and input kind (``explained``: the multitask head
    whose explanation maps were written)."""
    columns = [key_column, "patient_key"] + (["n_files"] if with_files else ["manifest_row"])
    columns += trained.task.prediction_columns(trained.class_names, truth, explain, explained)
    for head, calibration in trained.head_calibrations().items():
        if calibration.sets is not None:
            prefix = f"{head}." if head else ""
            columns += [f"{prefix}prediction_set", f"{prefix}set_size"]
    return columns + ["model_id", "status", "reasons"]


def predict_items(trained: TrainedRun, inputs: PredictInputs, out: str | Path, options: PredictOptions,
                  truth: bool = False) -> PredictOutcome:
    """Predict this shard's items into ``out`` (resuming), then write the CSVs and ``predict.json``."""
    from ..models.device import compute_threads, resolve_device

    check_explain(trained, options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_job(out, _job_identity(trained, inputs, options, truth))
    if remove_orphan_temps(out):
        log.info("removed temporary files left by an interrupted run in %s", out)
    shard, count = options.shard
    items = [item for item in inputs.items if shard_of(item.key, count) == shard]
    journal = Journal(PredictDir(out).journal)
    marks = InflightMarks(PredictDir(out).inflight)
    suspects = _skip_crashing(items, journal, marks)
    marks_before = marks.suspects()
    todo = [item for item in items if item.key not in journal]
    device = resolve_device(options.device)
    workers = default_workers(device) if options.workers is None else options.workers
    torch.set_num_threads(compute_threads(trained.config.train.threads, workers))  # workers run 1 thread each
    started = time.perf_counter()
    log.info("%d item(s) in shard %d/%d, %d already done; model %s (%d fold model(s)) on %s", len(items), shard,
             count, len(items) - len(todo), trained.model_id, len(trained.members), device)
    for head, calibration in trained.head_calibrations().items():
        log.info("calibrated outputs%s: temperatures %s; %s", f" of task {head}" if head else "",
                 [round(t, 3) for t in calibration.temperatures],
                 calibration.note or f"prediction sets from {calibration.sets_from}"
                 if calibration.sets or calibration.note else "no prediction sets")
    if todo:
        models = trained.build_models(device)
        # suspects of an earlier crash go first, one at a time, so that a second crash names one series
        # patch mode: images keep their native extent, one per batch (the sliding windows are batched)
        batch_size = (options.batch_size or trained.config.train.batch_size) if trained.config.data.fixed_size else 1
        # suspects are read in a loader process even when items are otherwise read here (a crash there is a
        # one-line error), unless this process may not start one (a daemonic cluster worker)
        isolate = 0 if multiprocessing.current_process().daemon else 1
        phases = [([i for i in todo if i.key in suspects], 1, isolate),
                  ([i for i in todo if i.key not in suspects], batch_size, workers)]
        description = "predicting" + (f" ({len(items) - len(todo)} already done)" if len(todo) < len(items) else "")
        try:
            with progress_bar(description, len(todo), options.progress) as advance:
                for phase_items, batch_size, phase_workers in phases:
                    if not phase_items:
                        continue
                    loader = torch.utils.data.DataLoader(
                        ItemDataset(phase_items, trained.config, truth, marks), batch_size=batch_size,
                        num_workers=phase_workers, collate_fn=collate_items, worker_init_fn=quiet_worker,
                        prefetch_factor=2 if phase_workers else None, pin_memory=device.type == "cuda")
                    for batch in _batches(loader):
                        for record in _process_batch(batch, phase_items, models, trained, out, options, device,
                                                     truth):
                            journal.append(record)
                        advance(len(batch))
        except KeyboardInterrupt:
            marks.restore(marks_before)
            raise
        finally:
            journal.close()
    elapsed = time.perf_counter() - started
    return _finish(trained, inputs, out, options, truth, items, journal, len(todo), elapsed, str(device))


def _finish(trained: TrainedRun, inputs: PredictInputs, out: Path, options: PredictOptions, truth: bool,
            items: list[PredictItem], journal: Journal, n_new: int, elapsed: float, device: str) -> PredictOutcome:
    shard, count = options.shard
    with_files = inputs.kind == "export"
    records = [journal.records[item.key] for item in items if item.key in journal.records]
    usable = [r for r in records if r["status"] != "skipped"]
    rows = [_prediction_row(r, trained, inputs.key_column, with_files, truth) for r in usable]
    skipped = [row for row in inputs.skipped if shard_of(row["input"], count) == shard]
    for record in records:
        if record["status"] == "skipped":
            inputs_of = record["file_keys"] if with_files else [record["key"]]
            skipped += [{"input": key, "series_key": record["key"] if with_files else "", "reason": record["reason"],
                         "detail": record["detail"]} for key in inputs_of]
    columns = prediction_columns(trained, inputs.key_column, with_files, truth, bool(options.explain),
                                 explained_task(trained, options) if options.explain else None)
    folder = PredictDir(out)
    write_csv(folder.predictions, columns, rows)
    write_csv(folder.skipped, SKIPPED_COLUMNS, skipped)
    summary = _summary(trained, inputs, options, items, records, rows, skipped, n_new, elapsed, device)
    write_json(folder.summary, summary)
    return PredictOutcome(out, usable, rows, skipped, summary)


def _summary(trained: TrainedRun, inputs: PredictInputs, options: PredictOptions, items: list[PredictItem],
             records: list[dict], rows: list[dict], skipped: list[dict], n_new: int, elapsed: float,
             device: str) -> dict:
    shard, count = options.shard
    unfinished = len(items) - len(records)
    summary = {"medtl_version": __version__, "model_id": trained.model_id, "arm": trained.arm,
               "calibration": (trained.calibration.to_dict() if trained.calibration else
                               {head: c.to_dict() for head, c in trained.task_calibration.items()} or None),
               "fold_models": [m.name for m in trained.members], "task": trained.task_name,
               "input_kind": inputs.kind, "shard": f"{shard}/{count}", "items_in_shard": len(items),
               "predicted": len(rows), "skipped_items": len(records) - len(rows), "unfinished": unfinished,
               "skip_rows_by_reason": dict(Counter(r["reason"] for r in skipped).most_common()),
               "predicted_this_run": n_new, "seconds_this_run": round(elapsed, 3),
               "items_per_second": round(n_new / elapsed, 2) if n_new and elapsed > 0 else None, "device": device}
    if inputs.kind == "export":
        in_shard = sum(i.n_files for i in items) + sum(shard_of(r["input"], count) == shard for r in inputs.skipped)
        accounted = sum(r["n_files"] for r in rows) + len(skipped)
        summary.update(files_found=inputs.files_found, files_in_shard=in_shard, files_predicted=accounted -
                       len(skipped), files_skipped=len(skipped))
        if accounted != in_shard and not unfinished:
            raise RuntimeError(f"predict accounting is off: {accounted} files accounted for, {in_shard} in shard")
    else:
        summary["cases_in_shard"] = len(items)
    return summary
