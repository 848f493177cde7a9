"""Cases from a manifest, preprocessed once and cached, and the torch Dataset over them.

The cache key is the SHA-256 of the input files' content plus the preprocessing
config, so folds, arms and re-runs never decode the same file twice, and a changed
file or setting is never served stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..config import Config
from ..errors import InputError, public_detail
from ..io import load_volume
from ..io.reasons import Reason
from ..io.volume import Volume
from ..progress import progress_bar
from .geometry import aligned_mask, squeeze_2d
from .manifest import Case, Manifest

log = logging.getLogger("medtl")


@dataclass
class PreparedCase:
    """A preprocessed case: network-ready arrays plus opaque keys and recorded notes."""

    case_id: str
    patient_key: str
    group_key: str
    label: int | None
    image: np.ndarray  # (1, *image_size) float32
    mask: np.ndarray | None  # (1, *image_size) int16
    content_hash: str
    notes: list[str] = field(default_factory=list)
    spacing: tuple[float, ...] = ()  # mm per voxel at network resolution (for HD95)
    image_hash: str = ""  # SHA-256 of the image file(s) alone: finds training images in external test sets


def content_hash(path: Path) -> str:
    """SHA-256 of a file, or of every file under a folder (relative names included)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def preprocessing_fingerprint(config: Config) -> str:
    data = config.data.model_dump(mode="json", exclude={"manifest", "augment"})
    return json.dumps({"data": data, "task": config.task, "medtl": __version__}, sort_keys=True)


@dataclass
class NetworkInput:
    """A volume preprocessed for the network, plus what is needed to map outputs back."""

    sample: dict  # MONAI pipeline output: "image" (and "mask") at network resolution
    input_affine: np.ndarray  # 4x4 index -> world of the array fed in (identity for 2D)
    input_shape: tuple[int, ...]  # that array's shape: the original grid
    notes: list[str]
    mask: np.ndarray | None = None  # the mask on the original grid (after alignment)

    @property
    def network_affine(self) -> np.ndarray:
        return np.asarray(self.sample["image"].affine, dtype=float)

    def network_spacing(self, image: Volume) -> tuple[float, ...]:
        """mm per voxel at network resolution."""
        if len(self.input_shape) == 3:
            return tuple(float(s) for s in np.linalg.norm(self.network_affine[:3, :3], axis=0))
        scale = np.asarray(self.input_shape) / np.asarray(self.sample["image"].shape[1:])
        return tuple(float(s) for s in np.asarray(image.spacing[-2:]) * scale)


def network_input(image: Volume, config: Config, case_id: str, mask: Volume | None = None) -> NetworkInput:
    """Run the deterministic preprocessing of ``config`` on ``image`` (and its mask)."""
    from ..transforms.presets import preprocess_pipeline, to_metatensor

    dims = config.data.dims
    notes = [code for code in image.reason_codes if code not in ("SERIES_SPLIT",)]
    if dims == 2:
        array, affine = squeeze_2d(image, "image", case_id), None
    else:
        if image.ndim != 3 or image.array.shape[0] < 3:
            raise InputError(f"case {case_id}: image shape {image.array.shape} is too thin for a 3D task",
                             Reason.TOO_FEW_SLICES.name)
        array, affine = image.array, image.affine
    sample = {"image": to_metatensor(array.astype(np.float32), affine)}
    mask_array = None
    if mask is not None:
        mask_array, note = aligned_mask(image, mask, dims, case_id, config.data.resample_mask)
        if note:
            notes.append(note)
        sample["mask"] = to_metatensor(mask_array.astype(np.float32), affine)
    out = preprocess_pipeline(config.data, mask is not None)(sample)
    return NetworkInput(out, np.eye(4) if affine is None else affine, tuple(array.shape), notes, mask_array)


def _prepare(case: Case, manifest: Manifest, config: Config) -> PreparedCase:
    image = load_volume(case.image)
    patient_key = case.patient_key or image.metadata.get("patient_key", "")
    if not patient_key:
        raise InputError(f"case {case.case_id}: no patient_id column and no PatientID in the image header; add a "
                         "patient_id column to the manifest (patient-level folds need it)")
    mask = load_volume(case.mask, as_label=True) if config.task == "segmentation" else None
    prepared = network_input(image, config, case.case_id, mask)
    out = prepared.sample
    label = manifest.class_index(case.label) if config.task == "classification" else None
    prepared_mask = np.rint(np.asarray(out["mask"])).astype(np.int16) if "mask" in out else None
    return PreparedCase(case.case_id, patient_key, case.group_key or patient_key, label,
                        np.asarray(out["image"], dtype=np.float32), prepared_mask, "", prepared.notes,
                        prepared.network_spacing(image))


def prepare_cases(manifest: Manifest, config: Config, cache_dir: Path | None, progress: bool = True
                  ) -> tuple[list[PreparedCase], list[dict]]:
    """Load and preprocess every case (cached); unusable cases are returned as skip records."""
    fingerprint = preprocessing_fingerprint(config)
    prepared, skipped = [], []
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar("preparing cases", len(manifest.cases), progress) as advance:
        for case in manifest.cases:
            try:
                sources = [case.image] + ([case.mask] if config.task == "segmentation" and case.mask else [])
                missing = [p for p in sources if not p.exists()]
                if missing:
                    raise InputError(f"case {case.case_id}: file not found", "FILE_NOT_FOUND")
                hashes = [content_hash(p) for p in sources]
                digest = hashlib.sha256((fingerprint + "".join(hashes)).encode()).hexdigest()
                item = _load_cached(cache_dir, digest, case) if cache_dir else None
                if item is None:
                    item = _prepare(case, manifest, config)
                    item.content_hash = digest
                    if cache_dir:
                        _save_cached(cache_dir, item)
                item.image_hash = hashes[0]
                prepared.append(item)
            except InputError as exc:
                skipped.append({"case_id": case.case_id, "reason": exc.reason or Reason.IMAGE_UNREADABLE.name,
                                "detail": public_detail(exc)})
                log.warning("case %s skipped: %s", case.case_id, exc.reason or exc)
            advance(1)
    return prepared, skipped


def _cache_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"{digest[:32]}.npz"


def _load_cached(cache_dir: Path, digest: str, case: Case) -> PreparedCase | None:
    path = _cache_path(cache_dir, digest)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        mask = data["mask"] if "mask" in data.files else None
        return PreparedCase(case.case_id, meta["patient_key"], meta["group_key"], meta["label"], data["image"],
                            mask, digest, meta["notes"], tuple(meta["spacing"]))


def _save_cached(cache_dir: Path, item: PreparedCase) -> None:
    meta = json.dumps({"patient_key": item.patient_key, "group_key": item.group_key, "label": item.label,
                       "notes": item.notes, "spacing": list(item.spacing)})
    arrays = {"image": item.image, "meta": np.array(meta)}
    if item.mask is not None:
        arrays["mask"] = item.mask
    path = _cache_path(cache_dir, item.content_hash)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


class CaseDataset(torch.utils.data.Dataset):
    """Tensors for training/inference; ``augment`` is a MONAI dict transform or ``None``."""

    def __init__(self, cases: list[PreparedCase], augment=None):
        self.cases, self.augment = cases, augment

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int):
        case = self.cases[index]
        sample = {"image": torch.from_numpy(case.image)}
        if case.mask is not None:
            sample["mask"] = torch.from_numpy(case.mask.astype(np.float32))
        if self.augment is not None:
            sample = self.augment(sample)
        image = torch.as_tensor(sample["image"]).float()
        if case.mask is not None:
            return image, torch.as_tensor(sample["mask"])[0].round().long()
        return image, torch.tensor(case.label, dtype=torch.long)
