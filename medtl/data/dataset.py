"""Cases from a manifest, preprocessed once and cached, and the torch Dataset over them.

The cache key is the SHA-256 of the input files' content plus the preprocessing
config, so folds, arms and re-runs never decode the same file twice, and a changed
file or setting is never served stale.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..config import Config
from ..errors import InputError
from ..io import load_volume
from ..io.reasons import Reason
from ..plumbing.atomic import atomic_path
from ..plumbing.hashing import sha256_path, sha256_text
from ..plumbing.progress import progress_bar
from ..plumbing.redact import public_detail
from ..tasks import get_task
from ..transforms.network_input import network_input
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
    image_hash: str = ""  # SHA-256 of the loaded pixels: finds training images in external sets, renamed or not


def preprocessing_fingerprint(config: Config) -> str:
    """Everything that decides a prepared case besides the files: data settings, task, medtl version, salt.

    The salt is in it (as a keyed hash) because a case read from a DICOM header caches
    its keyed patient key.
    """
    from ..io.pseudonym import keyed_hash

    data = config.data.model_dump(mode="json", exclude={"manifest", "augment"})
    return json.dumps({"data": data, "task": config.task, "medtl": __version__,
                       "salt": keyed_hash("prepared-case-cache", "salt-check")}, sort_keys=True)


def _prepare(case: Case, manifest: Manifest, config: Config) -> PreparedCase:
    image = load_volume(case.image, rgb=config.data.rgb)
    patient_key = case.patient_key or image.metadata.get("patient_key", "")
    if not patient_key:
        raise InputError(f"case {case.case_id}: no patient_id column and no PatientID in the image header; add a "
                         "patient_id column to the manifest (patient-level folds need it)")
    task = get_task(config.task)
    mask = load_volume(case.mask, as_label=True) if task.uses_mask else None
    prepared = network_input(image, config, case.case_id, mask)
    out = prepared.sample
    label = manifest.class_index(case.label) if task.target_column == "label" else None
    prepared_mask = np.rint(np.asarray(out["mask"])).astype(np.int16) if "mask" in out else None
    return PreparedCase(case.case_id, patient_key, case.group_key or patient_key, label,
                        np.asarray(out["image"], dtype=np.float32), prepared_mask, "", prepared.notes,
                        prepared.network_spacing(image), image.pixel_hash())


def prepare_cases(manifest: Manifest, config: Config, cache_dir: Path | None, progress: bool = True,
                  keep_paths: bool = False) -> tuple[list[PreparedCase], list[dict]]:
    """Load and preprocess every case (cached); unusable cases are returned as skip records.

    ``keep_paths`` puts the file paths into the skip details (they may hold patient
    names: for the user's local use only); otherwise paths are redacted.
    """
    fingerprint = preprocessing_fingerprint(config)
    uses_mask = get_task(config.task).uses_mask
    prepared, skipped = [], []
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar("preparing cases", len(manifest.cases), progress) as advance:
        for case in manifest.cases:
            try:
                sources = [case.image] + ([case.mask] if uses_mask and case.mask else [])
                missing = [p for p in sources if not p.exists()]
                if missing:
                    which = " and ".join("image" if p == case.image else "mask" for p in missing)
                    where = f" ({', '.join(map(str, missing))})" if keep_paths else ""
                    raise InputError(f"case {case.case_id}: {which} file named on manifest line {case.line} not "
                                     f"found{where}", "FILE_NOT_FOUND")
                hashes = [sha256_path(p) for p in sources]
                digest = sha256_text(fingerprint, *hashes)
                item = _load_cached(cache_dir, digest, case, manifest) if cache_dir else None
                if item is None:
                    item = _prepare(case, manifest, config)
                    item.content_hash = digest
                    if cache_dir:
                        _save_cached(cache_dir, item)
                prepared.append(item)
            except InputError as exc:
                detail = str(exc).split(": ", 1)[-1][:300] if keep_paths else public_detail(exc)
                skipped.append({"case_id": case.case_id, "reason": exc.reason or Reason.IMAGE_UNREADABLE.name,
                                "detail": detail})
                log.warning("case %s skipped: %s", case.case_id, exc.reason or Reason.IMAGE_UNREADABLE.name)
            # A reader bug on one odd file must not abort the run; the case is recorded instead.
            except Exception as exc:  # noqa: BLE001
                skipped.append({"case_id": case.case_id, "reason": Reason.IMAGE_UNREADABLE.name,
                                "detail": type(exc).__name__})
                log.warning("case %s skipped: unexpected %s while reading it", case.case_id, type(exc).__name__)
            advance(1)
    return prepared, skipped


def _cache_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"{digest[:32]}.npz"


def _load_cached(cache_dir: Path, digest: str, case: Case, manifest: Manifest) -> PreparedCase | None:
    """The cached arrays of a case; everything the manifest says (label, keys) is taken from the manifest.

    The cache key covers the files and the preprocessing only, so a label corrected in
    the manifest must never be served from the cache.
    """
    path = _cache_path(cache_dir, digest)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        mask = data["mask"] if "mask" in data.files else None
        patient_key = case.patient_key or meta["patient_key"]
        label = manifest.class_index(case.label) if case.label is not None and meta["label"] is not None else None
        return PreparedCase(case.case_id, patient_key, case.group_key or patient_key, label, data["image"], mask,
                            digest, meta["notes"], tuple(meta["spacing"]), meta.get("pixel_hash", ""))


def _save_cached(cache_dir: Path, item: PreparedCase) -> None:
    meta = json.dumps({"patient_key": item.patient_key, "label": item.label, "pixel_hash": item.image_hash,
                       "notes": item.notes, "spacing": list(item.spacing)})
    arrays = {"image": item.image, "meta": np.array(meta)}
    if item.mask is not None:
        arrays["mask"] = item.mask
    with atomic_path(_cache_path(cache_dir, item.content_hash)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


class CaseDataset(torch.utils.data.Dataset):
    """``(image, target, index)`` for training/inference; ``augment`` is a MONAI dict transform or ``None``.

    The index lets the training loop name the cases of a batch that went wrong.
    """

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
            return image, torch.as_tensor(sample["mask"])[0].round().long(), index
        return image, torch.tensor(case.label, dtype=torch.long), index
