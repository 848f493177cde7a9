"""The meta-learning source stage (``source.task: maml | fomaml | anil | protonet``).

Episodes come from ``meta.sources`` (each manifest's label columns; default: the
``source.manifest``'s ``label`` column), prepared with the target's preprocessing and checked
against the target run's images and patients (the leak guard). The checkpoint is the whole
network (encoder and the N-way head; a target run re-initialises the head for its own classes),
with the supervised checkpoint's metadata plus the method, cached by fingerprint like every
source stage. The labels are part of the fingerprint: a relabelled column trains a new model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..config import Config, TaskSpec
from ..data.case_cache import CaseCache
from ..data.dataset import PreparedCase, prepare_cases
from ..data.manifest import read_manifest
from ..data.provenance import data_hash
from ..errors import InputError
from ..meta.episodes import EpisodeSampler, build_families, stack_images
from ..meta.functional import refresh_batch_norm
from ..meta.loop import fit_meta
from ..meta.methods import build_meta_method
from ..models import create_model
from ..models.checkpoint import save_weights
from ..plumbing.hashing import sha256_text
from ..plumbing.progress import progress_bar
from ..results import SourceModel
from ..rundir import SourceDir
from .source_guard import guard_cases, guard_notes

log = logging.getLogger("medtl")


def meta_sources(config: Config) -> list[tuple[Path, list[str]]]:
    """``[(manifest, label columns)]``: ``meta.sources``, else ``source.manifest``'s ``label`` column."""
    if config.meta.sources:
        return [(s.manifest, list(s.columns)) for s in config.meta.sources]
    return [(config.source.manifest, ["label"])]


def read_episode_pool(config: Config, stage: Config, progress: bool):
    """``(prepared images, families, skip records)`` of every meta source."""
    images: list[PreparedCase] = []
    names, labels, class_names, skipped = [], [], [], []
    for path, columns in meta_sources(config):
        tasks = [TaskSpec(name=f"c{i}", kind="classification", column=c) for i, c in enumerate(columns)]
        manifest = read_manifest(path, "multitask", group_by=stage.cv.group_by, tasks=tasks)
        for case in manifest.cases:
            case.label = None  # a `label` column is read only when listed in columns (then as a family)
        cases, skips = prepare_cases(manifest, stage, CaseCache(), progress)
        skipped += skips
        offset = len(images)
        images += cases
        for spec in tasks:
            names.append(f"{Path(path).name}:{spec.column}")
            class_names.append(manifest.class_names[spec.name])
            column = [None] * offset + [c.labels.get(spec.name) for c in cases]
            labels.append(column)
    labels = [column + [None] * (len(images) - len(column)) for column in labels]
    if not images:
        raise InputError("no usable image in the meta-learning sources")
    families = build_families(names, labels, class_names, [c.patient_key for c in images])
    return images, families, labels, skipped


def labels_hash(images: list[PreparedCase], names: list[str], labels: list[list]) -> str:
    """One digest of which image carries which label in which family (relabelling changes the model)."""
    rows = [f"{name}\0{image.content_hash}\0{label}" for name, column in zip(names, labels)
            for image, label in zip(images, column) if label is not None]
    return sha256_text(*sorted(rows))


def meta_fingerprint_text(config: Config) -> str:
    """The ``meta`` settings that decide the model (the sources enter by their content and labels)."""
    return json.dumps(config.meta.model_dump(mode="json", exclude={"sources", "eval_inner_steps",
                                                                   "prototype_head"}), sort_keys=True)


def train_meta_model(config: Config, stage: Config, root: Path, stage_text: str, target_cases, progress: bool,
                     on_epoch, on_batch) -> SourceModel:
    """Meta-train (or reuse) the source model; returns a ``SourceModel``."""
    method_name, meta = config.source.task, config.meta
    images, families, labels, skipped = read_episode_pool(config, stage, progress)
    sampler = EpisodeSampler(families, meta.ways, meta.shots, meta.queries, stage.train.seed)
    if target_cases is None:
        target_cases = guard_cases(config, progress)
    notes = guard_notes(config, images, target_cases, labelled=True)
    if skipped:
        notes.append(f"{len(skipped)} source image(s) could not be used and were left out")
    data_sha = data_hash([c.content_hash for c in images])
    label_sha = labels_hash(images, [f.name for f in families], labels)
    fingerprint = sha256_text(stage_text, method_name, meta_fingerprint_text(config), data_sha, label_sha)[:16]
    folder = SourceDir(root / fingerprint)
    if folder.is_finished():
        log.info("reusing meta-learned source model %s (same settings, images and labels)", fingerprint)
        return SourceModel(folder.model, True, fingerprint, folder.read_summary(), notes)
    torch.manual_seed(stage.train.seed)
    model = create_model(stage.model.backbone, dims=stage.data.dims, num_classes=meta.ways, task="classification",
                         pretrained=stage.model.pretrained, input_adapt=stage.model.input_adapt,
                         inflate=stage.model.inflate)
    method = build_meta_method(method_name, model, meta)
    args = (method, model, sampler, images, stage.train, meta, folder.state, stage.train.seed)
    if on_epoch is None and on_batch is None and progress:
        epochs = stage.train.epochs
        with progress_bar(f"{method_name} meta-training", epochs, True) as advance:
            history = fit_meta(*args, on_epoch=lambda r: advance(0, f"{method_name} epoch {r['epoch'] + 1}/{epochs} "
                                                                   f"query accuracy {r['query_accuracy']:.3f}"),
                               on_batch=lambda step, steps: advance(1 / steps))
    else:
        history = fit_meta(*args, on_epoch=on_epoch, on_batch=on_batch)
    device = next(model.parameters()).device
    batches = (stack_images(images, list(range(i, min(i + 32, len(images))))).to(device)
               for i in range(0, len(images), 32))
    refreshed = refresh_batch_norm(model, batches)
    patients = {c.patient_key for c in images}
    families_summary = [{"name": f.name, "class_names": f.class_names,
                         "patients_per_class": [len(m) for m in f.patients]} for f in families]
    metadata = {**model.describe(), "class_names": "[]", "data_sha256": data_sha, "labels_sha256": label_sha,
                "fingerprint": fingerprint, "source_task": method_name, "meta_method": method_name,
                "meta_ways": meta.ways, "epochs": stage.train.epochs}
    summary = {"fingerprint": fingerprint, "method": method_name, "meta": True, "n_cases": len(images),
               "n_skipped": len(skipped), "n_patients": len(patients), "class_names": [],
               "families": families_summary, "data_sha256": data_sha, "labels_sha256": label_sha,
               "settings": json.loads(meta_fingerprint_text(config)), "history": history,
               "batch_norm": (f"running statistics of {refreshed} BatchNorm layer(s) recomputed on the "
                              f"{len(images)} source images after meta-training (episodes use per-task statistics)")
               if refreshed else "", "adaptation": model.adaptation.summary()}
    folder.write_summary(summary)
    save_weights(folder.model, model, {k: str(v) for k, v in metadata.items()})
    folder.state.unlink(missing_ok=True)
    return SourceModel(folder.model, False, fingerprint, summary, notes)
