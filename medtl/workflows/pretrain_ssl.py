"""The self-supervised source stage (``source.task: simclr | byol | restore``).

The pool is the source manifest's ``image`` column (labels, if any, are ignored and
counted); its images are prepared with the target's preprocessing, checked against the
target run's images and patients (the leak guard), and the encoder is pretrained. The
checkpoint is safetensors (encoder only, with the supervised checkpoint's metadata plus
the method and pool hash), cached like a supervised source model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config import Config
from ..data.case_cache import CaseCache
from ..data.dataset import PreparedCase, prepare_cases
from ..data.manifest import read_manifest
from ..data.provenance import data_hash
from ..errors import InputError
from ..models import create_model
from ..models.checkpoint import save_weights
from ..plumbing.hashing import sha256_text
from ..plumbing.progress import progress_bar
from ..results import SourceModel
from ..rundir import SourceDir
from ..ssl.byol import BYOL
from ..ssl.loop import fit_ssl
from ..ssl.probe import ProbeMonitor
from ..ssl.restoration import Restoration
from ..ssl.restore import Corruptor, RestorePairs
from ..ssl.simclr import SimCLR
from ..ssl.views import ViewPairs, view_pipeline, view_units
from .source_guard import guard_cases, guard_notes

log = logging.getLogger("medtl")


def ssl_fingerprint_text(config: Config) -> str:
    """The ``ssl`` settings that decide the model (the probe set is hashed on its own)."""
    return json.dumps(config.ssl.model_dump(mode="json", exclude={"probe_manifest"}),
                      sort_keys=True)


def read_pool(stage: Config, progress: bool) -> tuple[list[PreparedCase], list[dict], int]:
    """The pool's prepared images, skip records, and how many rows carried a label (ignored)."""
    manifest = read_manifest(stage.data.manifest, "classification", targets=False)
    labelled = sum(c.label is not None for c in manifest.cases)
    for case in manifest.cases:
        case.label = None  # self-supervised: labels are never read, whatever the manifest holds
    manifest.class_names = []
    cases, skipped = prepare_cases(manifest, stage, CaseCache(), progress, need_patient=False)
    if not cases:
        raise InputError(f"no usable image in the self-supervised pool {manifest.path}")
    return cases, skipped, labelled


def read_probe(config: Config, stage: Config, progress: bool) -> tuple[list[PreparedCase], list[str]]:
    """The labelled probe set (``ssl.probe_manifest``), prepared like the pool; empty without one."""
    if config.ssl.probe_manifest is None:
        return [], []
    manifest = read_manifest(config.ssl.probe_manifest, "classification")
    cases, _ = prepare_cases(manifest, stage, CaseCache(), progress)
    return cases, manifest.class_names


def build_objective(method: str, stage: Config, ssl_config):
    """The encoder (with a one-channel decoder for restoration) inside its objective."""
    encoder = create_model(stage.model.backbone, dims=stage.data.dims, num_classes=1,
                           task="segmentation" if method == "restore" else "classification",
                           pretrained=stage.model.pretrained, input_adapt=stage.model.input_adapt,
                           inflate=stage.model.inflate)
    if method == "simclr":
        return SimCLR(encoder, ssl_config)
    if method == "byol":
        return BYOL(encoder, ssl_config)
    return Restoration(encoder)


def training_data(objective, pool: list[PreparedCase], ssl_config, seed: int):
    """``(dataset, randomised)``: view pairs or corrupted/original pairs, and the transform the loop seeds."""
    shape = tuple(pool[0].spatial_shape)
    if objective.method == "restore":
        corruptor = Corruptor(shape, ssl_config)
        return RestorePairs(pool, corruptor), corruptor
    pipeline = view_pipeline(shape, ssl_config)
    units = view_units([c.patient_key for c in pool], ssl_config.patient_pairs)
    return ViewPairs(pool, units, pipeline, seed), pipeline


def train_ssl_model(config: Config, stage: Config, root: Path, stage_text: str, target_cases, progress: bool,
                    on_epoch, on_batch):
    """Train (or reuse) the self-supervised source model; returns a ``SourceModel``."""
    method = config.source.task
    pool, skipped, labelled = read_pool(stage, progress)
    if target_cases is None:
        target_cases = guard_cases(config, progress)
    notes = guard_notes(config, pool, target_cases, labelled=False)
    if skipped:
        from collections import Counter

        reasons = ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["reason"] for r in skipped).items()))
        notes.append(f"{len(skipped)} pool image(s) could not be used and were left out ({reasons})")
    if labelled:
        notes.append(f"the pool manifest has labels in {labelled} row(s): ignored (self-supervised {method})")
    probe_cases, probe_classes = read_probe(config, stage, progress)
    pool_sha = data_hash([c.content_hash for c in pool])
    probe_sha = data_hash([c.content_hash for c in probe_cases]) if probe_cases else ""
    fingerprint = sha256_text(stage_text, method, ssl_fingerprint_text(config), pool_sha, probe_sha)[:16]
    folder = SourceDir(root / fingerprint)
    path = folder.model
    if folder.is_finished():
        log.info("reusing self-supervised source model %s (same settings and pool)", fingerprint)
        return SourceModel(path, True, fingerprint, folder.read_summary(), notes)
    import torch

    torch.manual_seed(stage.train.seed)
    objective = build_objective(method, stage, config.ssl)
    dataset, randomised = training_data(objective, pool, config.ssl, stage.train.seed)
    probe = ProbeMonitor(probe_cases, config.ssl.probe, config.ssl.probe_every, stage.train.epochs) \
        if probe_cases else None
    args = (objective, dataset, randomised, stage.train, folder.state, stage.train.seed, probe)
    ids = [c.case_id for c in pool]
    if on_epoch is None and on_batch is None and progress:
        epochs = stage.train.epochs
        with progress_bar(f"{method} pretraining", epochs, True) as advance:
            history = fit_ssl(*args, on_epoch=lambda r: advance(0, f"{method} epoch {r['epoch'] + 1}/{epochs} loss "
                                                                  f"{r['train_loss']:.3f}"),
                              on_batch=lambda step, steps: advance(1 / steps), case_ids=ids)
    else:
        history = fit_ssl(*args, on_epoch=on_epoch, on_batch=on_batch, case_ids=ids)
    encoder = objective.encoder
    patients = {c.patient_key for c in pool if c.patient_key}
    metadata = {**encoder.describe(), "num_classes": 0, "task": method, "class_names": "[]", "data_sha256": pool_sha,
                "pool_sha256": pool_sha, "fingerprint": fingerprint, "source_task": method, "ssl_method": method,
                "epochs": stage.train.epochs}
    summary = {"fingerprint": fingerprint, "method": method, "n_cases": len(pool), "n_skipped": len(skipped),
               "n_patients": len(patients), "n_labels_ignored": labelled, "class_names": [],
               "data_sha256": pool_sha, "pool_sha256": pool_sha, "history": history,
               "probe": {"kind": config.ssl.probe, "n_cases": len(probe_cases), "class_names": probe_classes,
                         "data_sha256": probe_sha} if probe_cases else None,
               "adaptation": encoder.adaptation.summary()}
    folder.write_summary(summary)
    save_weights(path, encoder.backbone, metadata, prefix="backbone.")
    folder.state.unlink(missing_ok=True)
    return SourceModel(path, False, fingerprint, summary, notes)
