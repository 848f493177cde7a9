"""Source-task pretraining (``medtl pretrain`` and ``model.pretrained: source``).

The source stage trains the configured backbone on the ``source`` manifest (all of
it, fixed epochs) and writes a safetensors checkpoint with metadata (backbone, dims,
channels, classes, data hash). It is cached under ``$MEDTL_HOME/source_models/`` by a
fingerprint of the stage config and the source data, so a re-run reuses it. A
self-supervised ``source.task`` (simclr, byol, restore) goes to ``pretrain_ssl``, a
meta-learning one (maml, fomaml, anil, protonet) to ``pretrain_meta``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ..config import META_TASKS, SSL_TASKS, Config
from ..data.case_cache import CaseCache
from ..data.dataset import prepare_cases
from ..data.manifest import read_manifest
from ..data.provenance import data_hash
from ..errors import ConfigError, InputError
from ..io.pseudonym import medtl_home
from ..models import create_model
from ..models.checkpoint import save_weights
from ..models.lora import merge_lora
from ..plumbing.atomic import atomic_path
from ..plumbing.hashing import sha256_text
from ..plumbing.progress import progress_bar
from ..results import SourceModel
from ..rundir import SourceDir
from ..tasks import get_task
from ..train.loop import fit
from .source_guard import guard_cases, guard_notes

log = logging.getLogger("medtl")


def source_stage_config(config: Config) -> Config:
    """The target config turned into the source stage's config."""
    source = config.source
    if source is None or (source.manifest is None and not (source.task in META_TASKS and config.meta.sources)):
        raise ConfigError("model.pretrained=source needs a `source:` section with a manifest (see "
                          "configs/sample_cls2d.yaml)")
    # a self-supervised stage prepares its pool like classification images (no masks, labels ignored); a
    # meta-learning stage reads its label columns itself
    task = "classification" if source.task in (*SSL_TASKS, *META_TASKS) else source.task
    manifest = source.manifest
    if source.task in META_TASKS and config.meta.sources:
        manifest = config.meta.sources[0].manifest
    return config.derive({
        "task": task, "tasks": [], "compare": [], "source": None, "data.manifest": manifest,
        "data.positive_class": None,
        "model.pretrained": source.pretrained, "finetune.strategy": "full", "finetune.l2sp": 0.0,
        "train.epochs": source.epochs, "train.batch_size": source.batch_size, "train.lr": source.lr,
        "train.selection": "last", "train.label_fraction": 1.0, "train.replicate": 0,
        # the source stage is ordinary training on the source set: not the target's federated or private method
        "train.method": None, "adapt.method": "none", "privacy.dp": False, "train.only_site": None},
        where="source stage")


def stage_fingerprint_text(stage: Config) -> str:
    """What decides the source model: task, preprocessing, backbone and its start, training settings.

    Not the target's CV, arms or fine-tuning (the source stage always trains fully), and
    not where the manifest lies (its content is hashed separately), so changing
    ``cv.folds`` or ``compare`` never retrains the source model.
    """
    raw = stage.model_dump(mode="json")
    unused = ("manifest", "positive_class")  # the source stage's own manifest; it has no positive class
    used = {"task": raw["task"], "data": {k: v for k, v in raw["data"].items() if k not in unused},
            "model": {k: raw["model"][k] for k in ("backbone", "pretrained", "input_adapt", "inflate")},
            # keys added after models were cached are left out while unset, so those models stay valid
            "train": {k: v for k, v in raw["train"].items() if not (k in ("method", "only_site") and v is None)}}
    return json.dumps(used, sort_keys=True)


def source_key(config: Config) -> str:
    """What identifies a config's source stage (arms with equal keys share one source model)."""
    stage = source_stage_config(config)
    return sha256_text(stage_fingerprint_text(stage), str(stage.data.manifest), config.source.task,
                       config.ssl.model_dump_json(),
                       *([config.meta.model_dump_json()] if config.source.task in META_TASKS else []))


def train_source_model(config: Config, progress: bool = True, on_epoch=None, on_batch=None,
                       target_cases: list | None = None) -> SourceModel:
    """Train the source stage, or reuse the cached checkpoint of an identical one.

    ``on_epoch``/``on_batch`` report progress to a caller that draws its own bar (``cv``).
    ``target_cases`` (the run's cases) are what the self-supervised leak guard checks the
    pool against; without them it reads ``data.manifest``.
    """
    stage = source_stage_config(config)
    root = medtl_home() / "source_models"
    if config.source.task in SSL_TASKS:
        from .pretrain_ssl import train_ssl_model

        return train_ssl_model(config, stage, root, stage_fingerprint_text(stage), target_cases, progress, on_epoch,
                               on_batch)
    if config.source.task in META_TASKS:
        from .pretrain_meta import train_meta_model

        return train_meta_model(config, stage, root, stage_fingerprint_text(stage), target_cases, progress, on_epoch,
                                on_batch)
    manifest = read_manifest(stage.data.manifest, stage.task)
    cases, skipped = prepare_cases(manifest, stage, CaseCache(), progress)
    if not cases:
        raise InputError(f"no usable case in the source manifest {manifest.path}")
    if target_cases is None:
        target_cases = guard_cases(config, progress)
    notes = guard_notes(config, cases, target_cases, labelled=True)
    stage_text = stage_fingerprint_text(stage)
    data_sha = data_hash([c.content_hash for c in cases])
    fingerprint = sha256_text(stage_text, data_sha)[:16]
    folder = SourceDir(root / fingerprint)
    path = folder.model
    if folder.is_finished():
        log.info("reusing source model %s (same source config and data)", fingerprint)
        return SourceModel(path, True, fingerprint, folder.read_summary(), notes)
    task = get_task(stage.task)
    num_classes = task.num_classes(manifest.class_names, cases)
    torch.manual_seed(stage.train.seed)
    model = create_model(stage.model.backbone, dims=stage.data.dims, num_classes=num_classes, task=task.head,
                         pretrained=stage.model.pretrained, input_adapt=stage.model.input_adapt,
                         inflate=stage.model.inflate)
    if on_epoch is None and on_batch is None and progress:  # `medtl pretrain` on its own: its own bar
        with progress_bar("source stage", stage.train.epochs, True) as advance:
            result = fit(model, cases, stage, folder.state, stage.train.seed,
                         on_epoch=lambda r: advance(0, f"source stage epoch {r['epoch'] + 1}/{stage.train.epochs} "
                                                       f"loss {r['train_loss']:.3f}"),
                         on_batch=lambda step, steps: advance(1 / steps))
    else:
        result = fit(model, cases, stage, folder.state, stage.train.seed, on_epoch=on_epoch, on_batch=on_batch)
    merge_lora(model)  # a source stage fine-tuned with lora is saved as a plain network
    metadata = {**model.describe(), "class_names": json.dumps(manifest.class_names), "data_sha256": data_sha,
                "fingerprint": fingerprint, "source_task": stage.task, "epochs": stage.train.epochs}
    summary = {"fingerprint": fingerprint, "n_cases": len(cases), "n_skipped": len(skipped),
               "class_names": manifest.class_names, "data_sha256": data_sha, "history": result.history,
               "adaptation": model.adaptation.summary()}
    folder.write_summary(summary)
    save_weights(path, model, metadata)
    folder.state.unlink(missing_ok=True)
    return SourceModel(path, False, fingerprint, summary, notes)


def export_source_model(model: SourceModel, out: Path) -> Path:
    """Copy the source checkpoint to ``out`` (atomically)."""
    with atomic_path(out) as tmp:
        shutil.copyfile(model.path, tmp)
    return out
