"""An export folder used as a predictor: the same interface as a trained run, networks from files.

An export is verified whole before any case is read: ``model.json`` against its schema,
``preprocessing.json`` against the hash ``model.json`` pins and its own schema, the two
against each other, every network file against its hash, and every network by one dry run
on a zero image of the stated input shape (the outputs must have the stated class count).
Any failure is one line naming the file (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError
from ..models.trained import Member, TrainedRun
from ..plumbing.hashing import sha256_file
from ..rundir import ExportDir
from .manifest import ExportManifest, read_manifest
from .networks import load_network
from .spec import PreprocessingSpec, read_spec


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


def _pinned_spec(path: Path, manifest: ExportManifest) -> PreprocessingSpec:
    folder = ExportDir(path)
    if not folder.spec.is_file():
        raise InputError(f"export {path} lacks preprocessing.json; copy the whole folder")
    if sha256_file(folder.spec) != manifest.preprocessing_sha256:
        raise InputError(f"{folder.spec} differs from the one exported (sha256 mismatch with model.json): the "
                         "preprocessing decides the answers as much as the weights; restore it or export again")
    spec = read_spec(folder.spec)
    if (spec.task, spec.class_names) != (manifest.task, manifest.class_names):
        raise InputError(f"export {path}: preprocessing.json says {spec.task} {spec.class_names} but model.json "
                         f"says {manifest.task} {manifest.class_names}; export again")
    return spec


def _dry_run(file: Path, spec: PreprocessingSpec) -> None:
    """One zero image of the stated input shape through the network; its output must fit the task and classes."""
    dense = spec.network.output == "voxel_logits"
    shape = [1, 1, *spec.network.input_shape[2:]]
    try:
        network = load_network(file, dense, torch.device("cpu"), threads=1)
        output = tuple(network(torch.zeros(shape)).shape)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; any failure is a broken export
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{file} does not run on an input of shape {shape} ({reason}); export again") from None
    expected = (1, len(spec.class_names), *shape[2:]) if dense else (1, len(spec.class_names))
    if output != expected:
        raise InputError(f"{file} gives outputs of shape {list(output)} on an input of shape {shape}; a {spec.task} "
                         f"export with {len(spec.class_names)} classes gives {list(expected)}; export again")


def load_export_dir(path: str | Path) -> ExportedRun:
    """Open an export folder (``medtl export --out DIR``), verified whole (module docstring) before use."""
    path = Path(path)
    manifest = read_manifest(ExportDir(path).model_json)
    if manifest.format != "onnx":
        raise InputError(f"export {path} holds torch.export programs; loading one unpickles its weights (it could "
                         "run code), so medtl predict runs ONNX exports only: export with --format onnx")
    spec = _pinned_spec(path, manifest)
    members = []
    for entry in manifest.members:
        file = path / entry.file
        if not file.is_file():
            raise InputError(f"export {path} lacks {entry.file} listed in model.json; copy the whole folder")
        if sha256_file(file) != entry.sha256:
            raise InputError(f"{file} differs from the file exported (sha256 mismatch with model.json); re-export, "
                             "or copy the folder again")
        _dry_run(file, spec)
        members.append(Member(entry.name, entry.repeat, entry.fold, file, {}, {}))
    return ExportedRun(path, spec.config(), manifest.arm, members, spec.class_names, len(spec.class_names),
                       manifest.model_id, _calibration(manifest))


def _calibration(manifest: ExportManifest):
    """The export's prediction sets; its temperatures are inside the networks already (so 1.0 here)."""
    from ..calibration.conformal import ConformalSets
    from ..calibration.outputs import OutputCalibration

    entry = manifest.calibration
    if entry is None:
        return None
    try:
        sets = None if entry.get("sets") is None else ConformalSets.from_dict(entry["sets"])
    except (KeyError, TypeError, ValueError):
        raise InputError("model.json: its calibration.sets are not readable; export again") from None
    return OutputCalibration([1.0] * len(manifest.members), sets, entry.get("sets_from", ""), entry.get("note"))
