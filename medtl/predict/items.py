"""What ``medtl predict`` runs over: manifest cases or the usable series of an export folder.

Each item has an opaque key (``case_id`` or ``series_key``); files that are not part
of any usable series become skip rows up front, so every input is accounted for.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..io.pseudonym import keyed_hash

SKIPPED_COLUMNS = ["input", "series_key", "reason", "detail"]


@dataclass
class PredictItem:
    """One case or series to predict (paths stay in memory; outputs use ``key``)."""

    key: str
    patient_key: str
    n_files: int
    file_keys: list[str]  # opaque keys of its files: the skip rows if it fails to load
    reasons: str = ""  # codes the scan already found
    path: Path | None = None  # manifest image, or a NIfTI/NRRD/MHA file of an export
    plan: object = None  # DICOM SeriesPlan of an export series
    label: str | None = None
    mask: Path | None = None
    site: str = ""  # the manifest's site column (per-site metrics in ``medtl evaluate``)
    labels: dict = field(default_factory=dict)  # multitask: the label of each classification task (or None)
    manifest_row: int | None = None  # the manifest line it came from (None: an export folder's series)


@dataclass
class PredictInputs:
    """Items plus the files skipped before any loading."""

    kind: str  # "manifest" or "export"
    source: Path
    items: list[PredictItem]
    skipped: list[dict] = field(default_factory=list)  # SKIPPED_COLUMNS rows
    files_found: int | None = None  # exports only

    @property
    def key_column(self) -> str:
        """``case_id`` for manifests, ``series_key`` for exports."""
        return "case_id" if self.kind == "manifest" else "series_key"


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` (1-based) -> ``(I, N)``; ``None`` -> ``(1, 1)``."""
    if not text:
        return 1, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like I/N (e.g. 2/4), got '{text}'") from None
    if count < 1 or not 1 <= index <= count:
        raise InputError(f"--shard {text}: I must be between 1 and N (shards are numbered 1..N)")
    return index, count


def shard_of(key: str, count: int) -> int:
    """The 1-based shard a key belongs to: a stable hash, so shards are disjoint and cover all keys."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % count + 1


def from_manifest(path: Path, task: str, targets: bool, tasks=()) -> PredictInputs:
    """One item per manifest row (``tasks``: the ``TaskSpec`` list of a multitask run)."""
    from ..data.manifest import read_manifest

    manifest = read_manifest(path, task, targets=targets, single_class_ok=True, tasks=tasks)
    items = [PredictItem(c.case_id, c.patient_key, 1, [c.case_id], path=c.image, label=c.label, mask=c.mask,
                         manifest_row=c.line,
                         site=c.site, labels=c.labels) for c in manifest.cases]
    return PredictInputs("manifest", path, items)


def from_export(root: Path, workers: int | None, progress: bool) -> PredictInputs:
    """One item per usable series of a scanned export; every other file is a skip row."""
    from ..io.scan import scan_export

    scan = scan_export(root, keep_paths=False, workers=workers, progress=progress)

    def file_key(path: str) -> str:
        return keyed_hash(os.path.relpath(path, root), "file")

    items = [PredictItem(s.series_key, s.patient_key, len(s.files), [file_key(p) for p in s.files], s.reasons,
                         path=Path(s.path) if s.path else None, plan=s.plan) for s in scan.sources]
    skipped = [{"input": r["file"], "series_key": "", "reason": r["reason"], "detail": r["detail"]}
               for r in scan.skipped_rows]
    return PredictInputs("export", root, items, skipped, scan.files_found)


def read_inputs(source: str | Path, task: str, targets: bool = False, workers: int | None = None,
                progress: bool = True, tasks=()) -> PredictInputs:
    """A manifest (``.csv``) or an export folder (scanned like ``medtl scan``); ``task`` is the config's task
    name and ``tasks`` its ``tasks:`` (multitask)."""
    source = Path(source)
    if source.is_dir():
        if targets:
            from ..tasks import get_task

            columns = [s.column for s in tasks] if tasks else [get_task(task).target_column]
            raise InputError(f"{source} is a folder; evaluation needs a manifest CSV with the column(s) "
                             f"{', '.join(columns)}")
        return from_export(source, workers, progress)
    if source.is_file() and source.suffix.lower() == ".csv":
        return from_manifest(source, task, targets, tasks)
    raise InputError(f"input {source} is neither an export folder nor a manifest .csv; pass a folder of "
                     "DICOM/NIfTI files or a manifest CSV (docs/outputs.md)")
