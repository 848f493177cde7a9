"""Cases from a manifest, preprocessed once and cached, and the torch Dataset over them.

The cache key is the SHA-256 of the input files' content plus the preprocessing
config, so folds, arms, runs and commands never decode the same file twice, and a
changed file or setting is never served stale. The cache is shared by every run
(``medtl.data.case_cache``: ``$MEDTL_HOME/cache/cases``, bounded by ``MEDTL_CACHE_GB``).

Resize mode keeps the (small, fixed-size) prepared arrays in memory. Patch mode keeps
each case at its native extent in the cache's ``.npy`` files and opens them
memory-mapped on each use, so a run's memory does not grow with the number of cases.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..config import Config
from ..errors import InputError
from ..io import load_volume
from ..io.reasons import Reason
from ..plumbing.hashing import sha256_path, sha256_text
from ..plumbing.progress import progress_bar
from ..plumbing.redact import public_detail
from ..tasks import get_task, task_of
from ..transforms.network_input import needs_mask, network_input
from .case_cache import CachedEntry, CaseCache
from .duplicates import difference_hash
from .manifest import Case, Manifest

log = logging.getLogger("medtl")


FOREGROUND_SAMPLE = 4096  # mask voxels kept per case to centre foreground patches on


def _array(data: np.ndarray | Path) -> np.ndarray:
    """The array itself, or a fresh read-only memory map of a stored one (released when dropped)."""
    return np.load(data, mmap_mode="r", allow_pickle=False) if isinstance(data, Path) else data


@dataclass
class PreparedCase:
    """A preprocessed case: network-ready arrays plus opaque keys and recorded notes.

    ``image`` and ``mask`` are arrays in resize mode; in patch mode they are stored as
    ``.npy`` files and every access maps the file (nothing stays in memory).
    """

    case_id: str
    patient_key: str
    group_key: str
    label: int | None
    image_data: np.ndarray | Path  # (1, *spatial) float32, or its .npy file
    mask_data: np.ndarray | Path | None  # (1, *spatial) int16, or its .npy file
    content_hash: str
    notes: list[str] = field(default_factory=list)
    spacing: tuple[float, ...] = ()  # mm per voxel at network resolution (for HD95)
    image_hash: str = ""  # SHA-256 of the loaded pixels: finds training images in external sets, renamed or not
    foreground: np.ndarray | None = None  # patch mode: up to FOREGROUND_SAMPLE mask voxel indices (k, dims)
    site: str = ""  # the manifest's site column (never cached: always the manifest's current value)
    labels: dict[str, int | None] = field(default_factory=dict)  # multitask: class index per classification task
    # foreground voxels of the mask as given, before preprocessing (None: no mask); a lesion can vanish in a resize
    source_foreground: int | None = None
    dhash: bytes | None = field(default=None, repr=False, compare=False)  # duplicates.case_dhash, once per case

    @property
    def image(self) -> np.ndarray:
        """``(1, *spatial)`` float32 (memory-mapped in patch mode)."""
        return _array(self.image_data)

    @property
    def mask(self) -> np.ndarray | None:
        """``(1, *spatial)`` int16 label map, or ``None`` (memory-mapped in patch mode)."""
        return None if self.mask_data is None else _array(self.mask_data)

    @property
    def had_foreground(self) -> bool:
        """Whether the mask *as given* has foreground (what strata, counts and the lesion/empty split use)."""
        if self.source_foreground is not None:
            return self.source_foreground > 0
        return self.mask is not None and bool(self.mask.any())

    @property
    def lost_foreground(self) -> bool:
        """The given mask has foreground but the network-grid mask has none: the lesion vanished in preprocessing."""
        return self.had_foreground and self.mask is not None and not bool(self.mask.any())

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The image's spatial shape (read from the file header in patch mode)."""
        return tuple(self.image.shape[1:])


def foreground_sample(mask: np.ndarray, seed: int) -> np.ndarray:
    """Up to ``FOREGROUND_SAMPLE`` voxel indices ``(k, dims)`` of ``mask[0] > 0``, drawn reproducibly."""
    flat = np.flatnonzero(mask[0] > 0)
    if len(flat) > FOREGROUND_SAMPLE:
        flat = np.sort(np.random.default_rng(seed).choice(flat, FOREGROUND_SAMPLE, replace=False))
    return np.stack(np.unravel_index(flat, mask.shape[1:]), axis=1).astype(np.int32)


def preprocessing_fingerprint(config: Config) -> str:
    """Everything that decides a prepared case besides the files: data settings, task, medtl version, salt.

    The salt is in it (as a keyed hash) because a case read from a DICOM header caches
    its keyed patient key.
    """
    from ..io.pseudonym import keyed_hash

    # sampling and inference settings do not change a prepared case; the patch size does only as an ROI crop
    sampling = {"manifest", "positive_class", "augment", "patches_per_case", "foreground_ratio", "aggregate",
                "sliding_window"}
    data = config.data.model_dump(mode="json", exclude=sampling | ({"patch_size"} if config.data.roi == "none"
                                                                    else set()))
    return json.dumps({"data": data, "task": config.task, "medtl": __version__,
                       "salt": keyed_hash("prepared-case-cache", "salt-check")}, sort_keys=True)


def _prepare(case: Case, manifest: Manifest, config: Config, need_patient: bool = True) -> PreparedCase:
    image = load_volume(case.image, rgb=config.data.rgb)
    patient_key = case.patient_key or image.metadata.get("patient_key", "")
    if not patient_key and need_patient:
        raise InputError(f"case {case.case_id}: manifest line {case.line} has no patient_id and the image header "
                         "no PatientID; add a patient_id column to the manifest (patient-level folds need it)",
                         Reason.NO_PATIENT_ID.name)
    task = task_of(config)
    mask = load_volume(case.mask, as_label=True) if needs_mask(config) and case.mask is not None else None
    prepared = network_input(image, config, case.case_id, mask)
    out = prepared.sample
    _, label, labels = _manifest_facts(case, manifest, {}, task.target_column == "label")
    prepared_mask = np.rint(np.asarray(out["mask"])).astype(np.int16) if task.uses_mask and "mask" in out else None
    return PreparedCase(case.case_id, patient_key, case.group_key or patient_key, label,
                        np.asarray(out["image"], dtype=np.float32), prepared_mask, "", prepared.notes,
                        prepared.network_spacing(image, config.data.mode == "resize"), image.pixel_hash(),
                        labels=labels, source_foreground=None if prepared_mask is None or mask is None
                        else int(np.count_nonzero(np.asarray(mask.array) > 0)))


def prepare_cases(manifest: Manifest, config: Config, cache: CaseCache | str | Path | None,
                  progress: bool = True, keep_paths: bool = False, need_patient: bool = True
                  ) -> tuple[list[PreparedCase], list[dict]]:
    """Load and preprocess every case (through the prepared-case cache); unusable cases are skip records.

    ``cache``: the shared ``CaseCache()`` (what every command uses), a folder for a cache of
    its own, or ``None`` (nothing stored: every case prepared in memory).
    ``keep_paths`` puts the file paths into the skip details (they may hold patient
    names: for the user's local use only); otherwise paths are redacted.
    ``need_patient=False`` (an unlabelled pretraining pool) accepts cases without a
    patient key (no patient_id column, no PatientID in the header).
    """
    if cache is not None and not isinstance(cache, CaseCache):
        cache = CaseCache(cache)
    fingerprint = preprocessing_fingerprint(config)
    uses_mask = needs_mask(config)
    uses_label = task_of(config).uses_label
    in_memory = config.data.mode != "patch"  # patch mode maps the stored arrays on each use
    prepared, skipped, stored = [], [], 0
    with progress_bar("preparing cases", len(manifest.cases), progress) as advance:
        for start in range(0, len(manifest.cases), _LOOKUP_BATCH):
            chunk = manifest.cases[start:start + _LOOKUP_BATCH]
            digests = [_guarded(skipped, keep_paths, case, _digest, fingerprint, uses_mask, keep_paths)
                       for case in chunk]
            known = [d for d in digests if d]
            entries = dict(zip(known, cache.get_many(known, in_memory))) if cache is not None else {}
            for case, digest in zip(chunk, digests):
                if digest:
                    entry = entries.get(digest)
                    item = _guarded(skipped, keep_paths, case, _case_from, digest, entry, manifest, config, cache,
                                    need_patient, uses_label, in_memory)
                    if item is not None:
                        prepared.append(item)
                        stored += cache is not None and entry is None
                advance(1)
    order = {case.case_id: i for i, case in enumerate(manifest.cases)}
    skipped.sort(key=lambda row: order.get(row["case_id"], -1))  # manifest order, as the cases are
    if cache is not None and stored:
        cache.evict()  # the cache grew: the bound (MEDTL_CACHE_GB), never touching what a running job holds
    for line in skip_summary(skipped):
        log.warning(line)
    return prepared, skipped


_LOOKUP_BATCH = 256  # cases whose cache entries are looked up (and leased) together


def _digest(case: Case, fingerprint: str, uses_mask: bool, keep_paths: bool) -> str:
    """The cache key of a case: its files' content and the preprocessing fingerprint."""
    sources = [case.image] + ([case.mask] if uses_mask and case.mask else [])
    missing = [p for p in sources if not p.exists()]
    if missing:
        which = " and ".join("image" if p == case.image else "mask" for p in missing)
        where = f" ({', '.join(map(str, missing))})" if keep_paths else ""
        raise InputError(f"case {case.case_id}: {which} file named on manifest line {case.line} not "
                         f"found{where}", "FILE_NOT_FOUND")
    return sha256_text(fingerprint, *(sha256_path(p) for p in sources))


def _case_from(case: Case, digest: str, entry: CachedEntry | None, manifest: Manifest, config: Config,
               cache: CaseCache | None, need_patient: bool, uses_label: bool, in_memory: bool) -> PreparedCase:
    """The case from its cache entry, or prepared now (and published when there is a cache)."""
    item = _from_entry(entry, case, manifest, uses_label) if entry is not None else None
    if item is None:
        item = _prepare(case, manifest, config, need_patient)
        item.content_hash = digest
        if not in_memory and item.mask_data is not None:
            item.foreground = foreground_sample(item.mask, int(digest[:8], 16))
        if cache is not None:
            item = _from_entry(_publish(cache, item, in_memory), case, manifest, uses_label)
    item.site = case.site
    return item


def _guarded(skipped: list[dict], keep_paths: bool, case: Case, work, *args):
    """``work(case, *args)``, or ``None`` with the case recorded in ``skipped`` when it cannot be used."""
    try:
        return work(case, *args)
    except InputError as exc:
        detail = str(exc).split(": ", 1)[-1][:300] if keep_paths else public_detail(exc)
        skipped.append({"case_id": case.case_id, "reason": exc.reason or Reason.IMAGE_UNREADABLE.name,
                        "detail": detail})
        log.debug("case %s skipped: %s", case.case_id, exc.reason or Reason.IMAGE_UNREADABLE.name)
    # A reader bug on one odd file must not abort the run; the case is recorded instead.
    except Exception as exc:  # noqa: BLE001
        skipped.append({"case_id": case.case_id, "reason": Reason.IMAGE_UNREADABLE.name,
                        "detail": type(exc).__name__})
        log.debug("case %s skipped: unexpected %s while reading it", case.case_id, type(exc).__name__)
    return None


def skip_summary(skipped: list[dict]) -> list[str]:
    """One console line per reason: how many cases, and the first one's detail (its manifest line, what to fix)."""
    first: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for row in skipped:
        first.setdefault(row["reason"], row)
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    return [f"{counts[reason]} case(s) skipped: {reason}; first: case {row['case_id']}: {row['detail']}"
            for reason, row in first.items()]


def _manifest_facts(case: Case, manifest: Manifest, meta: dict, uses_label: bool
                    ) -> tuple[str, int | None, dict[str, int | None]]:
    """Patient key, label and multi-task labels of a case: the manifest's now (the cache's patient key only
    where the manifest has none). Labels never come from the cache: the same file may be cached by an
    unlabelled pool and read again by a labelled manifest."""
    patient_key = case.patient_key or meta.get("patient_key", "")
    label = manifest.class_index(case.label) if uses_label and case.label is not None else None
    labels = {name: None if value is None else manifest.class_names[name].index(value)
              for name, value in case.labels.items()}
    return patient_key, label, labels


def _publish(cache: CaseCache, item: PreparedCase, in_memory: bool) -> CachedEntry:
    """Store a freshly prepared case; the returned entry's arrays replace the in-memory copy in patch mode."""
    item.dhash = difference_hash(item.image)  # asked for by every run's duplicate check: stored, not recomputed
    meta = {"patient_key": item.patient_key, "pixel_hash": item.image_hash, "notes": item.notes,
            "spacing": list(item.spacing), "source_foreground": item.source_foreground, "dhash": item.dhash.hex()}
    arrays = {"image": item.image_data, "mask": item.mask_data, "foreground": item.foreground}
    return cache.put(item.content_hash, arrays, meta, in_memory)


def _from_entry(entry: CachedEntry, case: Case, manifest: Manifest, uses_label: bool) -> PreparedCase:
    """A case from its cache entry; everything the manifest says (label, keys) is taken from the manifest.

    The cache key covers the files and the preprocessing only, so a label corrected in the
    manifest must never be served from the cache.
    """
    meta, arrays = entry.meta, entry.arrays
    patient_key, label, labels = _manifest_facts(case, manifest, meta, uses_label)
    foreground = arrays.get("foreground")
    if isinstance(foreground, Path):
        foreground = np.load(foreground, allow_pickle=False)
    return PreparedCase(case.case_id, patient_key, case.group_key or patient_key, label, arrays["image"],
                        arrays.get("mask"), entry.digest, list(meta["notes"]), tuple(meta["spacing"]),
                        meta.get("pixel_hash", ""), foreground, labels=labels,
                        source_foreground=meta.get("source_foreground"),
                        dhash=bytes.fromhex(meta["dhash"]) if meta.get("dhash") else None)


def training_item(image: np.ndarray, mask: np.ndarray | None, case: PreparedCase, index: int, augment=None,
                  task_kinds: dict[str, str] | None = None):
    """``(image, target, index)``: the target is the mask (segmentation) or the case's label.

    Multi-task (``task_kinds``): the target is ``{task: label or label map}``, ``-1`` where
    the case lacks that task's target (the multi-task loss leaves those cases out).
    """
    missing_mask = bool(task_kinds) and any(get_task(kind).uses_mask for kind in task_kinds.values()) and mask is None
    if missing_mask:  # augmented like a real mask, so the image draws the same random transform either way
        mask = np.zeros(image.shape, dtype=np.int16)
    sample = {"image": torch.from_numpy(image if image.flags.writeable else np.array(image, dtype=np.float32))}
    if mask is not None:
        sample["mask"] = torch.from_numpy(mask.astype(np.float32))
    if augment is not None:
        sample = augment(sample)
    image_tensor = torch.as_tensor(sample["image"]).float()
    label_map = None if mask is None else torch.as_tensor(sample["mask"])[0].round().long()
    if task_kinds:
        from ..tasks.multitask_loss import MISSING

        targets = {}
        for name, kind in task_kinds.items():
            if get_task(kind).uses_mask:
                targets[name] = torch.full_like(label_map, MISSING) if missing_mask else label_map
            else:
                value = case.labels.get(name)
                targets[name] = torch.tensor(MISSING if value is None else value, dtype=torch.long)
        return image_tensor, targets, index
    if label_map is not None:
        return image_tensor, label_map, index
    return image_tensor, torch.tensor(case.label, dtype=torch.long), index


class CaseDataset(torch.utils.data.Dataset):
    """``(image, target, index)`` for training/inference; ``augment`` is a MONAI dict transform or ``None``.

    The index lets the training loop name the cases of a batch that went wrong.
    """

    def __init__(self, cases: list[PreparedCase], augment=None, task_kinds: dict[str, str] | None = None):
        self.cases, self.augment, self.task_kinds = cases, augment, task_kinds

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int):
        case = self.cases[index]
        return training_item(case.image, case.mask, case, index, self.augment, self.task_kinds)
