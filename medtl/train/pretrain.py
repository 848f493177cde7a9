"""Source-task pretraining (``medtl pretrain`` and ``model.pretrained: source``).

The source stage trains the configured backbone on the ``source`` manifest (all of
it, fixed epochs) and writes a safetensors checkpoint with metadata (backbone, dims,
channels, classes, data hash). It is cached under ``$MEDTL_HOME/source_models/`` by a
fingerprint of the stage config and the source data, so a re-run reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config, dump_config
from ..data.dataset import prepare_cases
from ..data.manifest import read_manifest
from ..errors import ConfigError, InputError
from ..io.pseudonym import medtl_home
from ..models import create_model
from ..outputs import write_json
from .checkpoint import save_weights
from .loop import fit
from .provenance import data_hash

log = logging.getLogger("medtl")


@dataclass
class SourceModel:
    path: Path
    reused: bool
    fingerprint: str
    summary: dict


def source_stage_config(config: Config) -> Config:
    """The target config turned into the source stage's config."""
    source = config.source
    if source is None or source.manifest is None:
        raise ConfigError("model.pretrained=source needs a `source:` section with a manifest (see "
                          "configs/sample_cls2d.yaml)")
    raw = config.model_dump(mode="json")
    raw.update(task=source.task, compare=[], source=None)
    raw["data"]["manifest"] = str(source.manifest)
    raw["model"]["pretrained"] = source.pretrained
    raw["finetune"].update(strategy="full", l2sp=0.0)
    raw["train"].update(epochs=source.epochs, batch_size=source.batch_size, lr=source.lr, selection="last")
    return Config.model_validate(raw)


def train_source_model(config: Config, progress: bool = True) -> SourceModel:
    """Train the source stage, or reuse the cached checkpoint of an identical one."""
    stage = source_stage_config(config)
    root = medtl_home() / "source_models"
    manifest = read_manifest(stage.data.manifest, stage.task)
    cases, skipped = prepare_cases(manifest, stage, root / "cases", progress)
    if not cases:
        raise InputError(f"no usable case in the source manifest {manifest.path}")
    stage_text = dump_config(stage).replace(str(stage.data.manifest), "<source manifest>")
    data_sha = data_hash([c.content_hash for c in cases])
    fingerprint = hashlib.sha256((stage_text + data_sha).encode()).hexdigest()[:16]
    folder = root / fingerprint
    path = folder / "model.safetensors"
    if path.exists():
        log.info("reusing source model %s (same source config and data)", fingerprint)
        return SourceModel(path, True, fingerprint, json.loads((folder / "source.json").read_text()))
    num_classes = manifest.num_classes if stage.task == "classification" else \
        max(2, max(int(c.mask.max()) for c in cases) + 1)
    torch.manual_seed(stage.train.seed)
    model = create_model(stage.model.backbone, dims=stage.data.dims, num_classes=num_classes, task=stage.task,
                         pretrained=stage.model.pretrained, input_adapt=stage.model.input_adapt,
                         inflate=stage.model.inflate)
    result = fit(model, cases, stage, folder / "state.pt", stage.train.seed)
    metadata = {**model.describe(), "class_names": json.dumps(manifest.class_names), "data_sha256": data_sha,
                "fingerprint": fingerprint, "source_task": stage.task, "epochs": stage.train.epochs}
    summary = {"fingerprint": fingerprint, "n_cases": len(cases), "n_skipped": len(skipped),
               "class_names": manifest.class_names, "data_sha256": data_sha, "history": result.history,
               "adaptation": model.adaptation.summary()}
    write_json(folder / "source.json", summary)
    save_weights(path, model, metadata)
    (folder / "state.pt").unlink(missing_ok=True)
    return SourceModel(path, False, fingerprint, summary)


def export_source_model(model: SourceModel, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.path, out)
    return out
