"""An export folder used as a predictor: the same interface as a trained run, networks from files."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..models.trained import Member, TrainedRun
from ..plumbing.hashing import sha256_file
from ..rundir import ExportDir
from .networks import load_network
from .spec import read_spec


def is_export_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``medtl export``."""
    return ExportDir(Path(path)).is_export()


class ExportedRun(TrainedRun):
    """Exported networks with the preprocessing of ``preprocessing.json``; ``build_models`` loads the files."""

    has_layers = False

    def config_sha256(self) -> str:
        """The export's preprocessing contract identifies a predict job's models' preprocessing."""
        return sha256_file(ExportDir(self.path).spec)

    def build_models(self, device) -> list:
        """Every exported member, on onnxruntime (CUDA provider on a CUDA device when present) or torch."""
        dense = self.task.uses_mask
        threads = self.config.train.threads
        return [load_network(m.path, dense, device, threads) for m in self.members]


def load_export_dir(path: str | Path) -> ExportedRun:
    """Open an export folder (``medtl export --out DIR``), checking every network file against model.json."""
    path = Path(path)
    spec = read_spec(ExportDir(path).spec)
    model = json.loads(ExportDir(path).model_json.read_text())
    if model.get("format") != "onnx":
        raise InputError(f"export {path} holds torch.export programs; loading one unpickles its weights (it could "
                         "run code), so medtl predict runs ONNX exports only: export with --format onnx")
    members = []
    for entry in model["members"]:
        file = path / entry["file"]
        if not file.is_file():
            raise InputError(f"export {path} lacks {entry['file']} listed in model.json; copy the whole folder")
        if sha256_file(file) != entry["sha256"]:
            raise InputError(f"{file} differs from the file exported (sha256 mismatch with model.json); re-export, "
                             "or copy the folder again")
        members.append(Member(entry["name"], entry["repeat"], entry["fold"], file, {}, {}))
    return ExportedRun(path, spec.config(), model["arm"], members, spec.class_names, len(spec.class_names),
                       model["model_id"])
