"""``medtl scan``: a truthful, PHI-free inventory of an export tree.

Every file under the root is accounted for exactly once: it counts in one row of
``series.csv`` (``n_files``) or is one row of ``skipped.csv``. Paths are replaced by
keyed hashes unless ``keep_paths`` is set.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__
from ..errors import InputError
from ..plumbing.atomic import write_csv, write_json
from ..plumbing.progress import progress_bar
from .dicom_index import index_headers
from .dicom_series import assemble_one_series
from .dicom_tags import decoder_report
from .nifti import is_nifti_path
from .pseudonym import keyed_hash
from .reasons import Finding, Reason, format_findings
from .sitk_formats import is_sitk_path

log = logging.getLogger("medtl")
SERIES_COLUMNS = ["series_key", "patient_key", "site_key", "modality", "kind", "n_files", "shape", "spacing", "status",
                  "reasons"]
SKIPPED_COLUMNS = ["file", "reason", "detail"]
_COMPANION_DATA = {".hdr": (".img", ".img.gz"), ".mhd": (".raw", ".zraw")}


@dataclass
class ExportSource:
    """How to load one usable series/volume of a scan (in memory only: it holds paths)."""

    series_key: str
    patient_key: str
    files: list[str]  # every file counted in this series, for accounting if it fails later
    reasons: str
    plan: object = None  # the DICOM SeriesPlan, or None for a NIfTI/NRRD/MHA file
    path: str | None = None


@dataclass
class ScanResult:
    """In-memory scan outcome (rows are PHI-free unless ``keep_paths``)."""

    files_found: int
    series_rows: list[dict] = field(default_factory=list)
    skipped_rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    sources: list[ExportSource] = field(default_factory=list)  # parallel to series_rows (if kept)


def list_files(root: Path, unreadable: list[str] | None = None, linked: list[str] | None = None) -> list[str]:
    """Every non-directory entry under ``root`` (links to files included, links to folders not followed).

    Folders that cannot be listed are appended to ``unreadable`` and links to folders to
    ``linked`` (each is one entry of the accounting, never silently missing from it).
    """
    def failed(error: OSError) -> None:
        if unreadable is not None and error.filename and os.path.abspath(error.filename) != os.path.abspath(root):
            unreadable.append(error.filename)

    files = []
    for folder, subfolders, names in os.walk(root, onerror=failed):
        files += [os.path.join(folder, name) for name in names]
        if linked is not None:  # os.walk lists a link to a folder among the folders and does not enter it
            linked += [os.path.join(folder, name) for name in subfolders if os.path.islink(os.path.join(folder, name))]
    return sorted(files)


def _companions(paths: list[str]) -> dict[str, list[str]]:
    """Header file -> its data files (.hdr/.img, .mhd/.raw) that exist in ``paths``."""
    present = set(paths)
    pairs: dict[str, list[str]] = {}
    for path in paths:
        lower = path.lower()
        for header_suffix, data_suffixes in _COMPANION_DATA.items():
            if lower.endswith(header_suffix):
                stem = path[: -len(header_suffix)]
                found = [stem + s for s in data_suffixes if stem + s in present]
                found += [stem + s.upper() for s in data_suffixes if stem + s.upper() in present]
                if found:
                    pairs[path] = found
    return pairs


def _index_other(path: str):
    """Load a NIfTI/NRRD/MHA file fully (truncation shows now); ``(volume, None)`` or ``(None, finding)``."""
    from .dicom_header import file_access_problem
    from .load import load_volume

    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return None, Finding(*file_access_problem(path, exc))
    try:
        return load_volume(path), None
    except InputError as exc:
        return None, Finding(Reason[exc.reason] if exc.reason else Reason.IMAGE_UNREADABLE, "")
    # A reader bug on one odd file must not abort the batch; the file is recorded instead.
    except Exception as exc:  # noqa: BLE001
        log.warning("unexpected %s while reading a volume; recorded as IMAGE_UNREADABLE", type(exc).__name__)
        return None, Finding(Reason.IMAGE_UNREADABLE, type(exc).__name__)


def _fmt(values) -> str:
    return "x".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values)


def scan_export(root: str | os.PathLike, keep_paths: bool = False, workers: int | None = None,
                include_derived: bool = False, progress: bool = True, verify_pixels: bool = False,
                keep_sources: bool = True) -> ScanResult:
    """Index every file under ``root`` and group DICOM files into series.

    ``verify_pixels`` also decodes every usable DICOM series, so corrupt codestreams
    show up as ``DECODE_FAILED`` now rather than during training (slower).
    ``keep_sources=False`` keeps only the rows (an inventory): each series' records are
    released once its row is made, so memory stays nearly flat in the number of files.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"export folder does not exist or is not a folder: {root}")
    started = time.perf_counter()
    unreadable: list[str] = []
    linked: list[str] = []
    paths = list_files(root, unreadable, linked)
    if not paths and not unreadable and not linked:
        raise InputError(f"export folder {root} holds no files")
    result = ScanResult(files_found=len(paths) + len(unreadable) + len(linked))

    def file_key(path: str) -> str:
        relative = os.path.relpath(path, root)
        return relative if keep_paths else keyed_hash(relative, "file")

    def skip(path: str, finding: Finding) -> None:
        result.skipped_rows.append({"file": file_key(path), "reason": finding.reason.name, "detail": finding.detail})

    for folder in unreadable:  # counted as one entry each: its files cannot even be listed
        skip(folder, Finding(Reason.PERMISSION_DENIED, "folder cannot be listed"))
    for link in linked:  # one entry each: not followed (a loop, or a folder outside the export)
        skip(link, Finding(Reason.SYMLINKED_FOLDER, "link to a folder, not followed"))
    decoders = decoder_report()
    for syntax, status in decoders.items():
        if status != "ok":
            log.warning("no decoder for %s here: files in it will be DECODER_MISSING (%s)", syntax, status)
    companions = _companions(paths)
    companion_files = {c for data in companions.values() for c in data}
    others = [p for p in paths if p not in companion_files and (is_nifti_path(p) or is_sitk_path(p))]
    other_set = set(others)
    dicom_candidates = [p for p in paths if p not in companion_files and p not in other_set]

    with progress_bar("scanning", len(paths), progress) as advance:
        advance(len(companion_files))
        for path in others:
            volume, finding = _index_other(path)
            files = [path] + companions.get(path, [])
            if finding is not None:
                for member in files:
                    skip(member, finding)
            else:
                _add_volume_row(result, volume, files, file_key(path), keep_paths, keep_sources, root)
            advance(1)
        index = index_headers(dicom_candidates, workers, include_derived, on_done=advance)

    for info in index.skipped:
        skip(info.path, info.skip)
    dropped: list[tuple[str, Finding]] = []
    refused: list[tuple[str, Finding]] = []
    with progress_bar("decoding", len(index.packed), progress and verify_pixels) as advance:
        for group, members in index.take_series(compact=keep_sources):  # one series in memory at a time
            assembly = assemble_one_series(group, members)
            dropped += assembly.dropped
            if verify_pixels:
                _verify_pixels(assembly.plans)
                advance(1)
            for plan in assembly.plans:
                if plan.refused is not None:
                    refused += [(path, plan.refused) for path in plan.counted_files]
                else:
                    _add_series_row(result, plan, keep_paths, keep_sources, root)
    for path, finding in dropped + refused:
        skip(path, finding)

    accounted = sum(r["n_files"] for r in result.series_rows) + len(result.skipped_rows)
    # a bug of medtl's, never the user's: the inventory is still written, and the command exits non-zero saying so
    mismatch = (f"scan accounting is off: {accounted} files accounted for, {result.files_found} found; this is a "
                "medtl bug: the inventory was written anyway, please report this line with scan.json's counts"
                if accounted != result.files_found else None)
    if mismatch:
        log.error(mismatch)
    elapsed = time.perf_counter() - started
    result.summary = {
        "medtl_version": __version__, "files_found": result.files_found,
        "files_in_series": accounted - len(result.skipped_rows), "files_skipped": len(result.skipped_rows),
        "series": len(result.series_rows),
        "skipped_by_reason": dict(Counter(r["reason"] for r in result.skipped_rows).most_common()),
        "series_by_reason": dict(Counter(code.split("(")[0] for r in result.series_rows
                                         for code in r["reasons"].split(";") if code).most_common()),
        "series_by_kind": dict(Counter(r["kind"] for r in result.series_rows)),
        "decoders": decoders, "seconds": round(elapsed, 3), "accounting_error": mismatch,
        "files_per_second": round(result.files_found / elapsed, 1) if elapsed > 0 else None,
    }
    return result


def _verify_pixels(plans) -> None:
    """Decode each plan; a plan that cannot be decoded is refused with the decoder's reason."""
    from .dicom import plan_to_volume

    for plan in plans:
        if plan.refused is None:
            try:
                plan_to_volume(plan)
            except InputError as exc:
                plan.refused = Finding(Reason[exc.reason] if exc.reason else Reason.DECODE_FAILED, "")


def _add_series_row(result: ScanResult, plan, keep_paths: bool, keep_sources: bool, root: Path) -> None:
    row = {"series_key": plan.series_key, "patient_key": plan.patient_key, "site_key": plan.site_key,
           "modality": plan.modality,
           "kind": plan.kind, "n_files": len(plan.counted_files), "shape": _fmt(plan.shape),
           "spacing": _fmt([float(s) for s in plan.geometry.spacing]),
           "status": "warn" if plan.findings else "ok", "reasons": format_findings(plan.findings)}
    if keep_paths:
        row["path"] = os.path.relpath(os.path.commonpath([os.path.dirname(p) for p in plan.files]), root)
    result.series_rows.append(row)
    if keep_sources:
        result.sources.append(ExportSource(plan.series_key, plan.patient_key, list(plan.counted_files),
                                           row["reasons"], plan=plan))


def _add_volume_row(result: ScanResult, volume, files: list[str], key: str, keep_paths: bool, keep_sources: bool,
                    root: Path) -> None:
    row = {"series_key": keyed_hash(key, "series"), "patient_key": "", "site_key": "",
           "modality": volume.metadata.get("modality", ""),
           "kind": volume.metadata["kind"], "n_files": len(files), "shape": _fmt(volume.array.shape),
           "spacing": _fmt(volume.spacing), "status": "warn" if volume.findings else "ok",
           "reasons": format_findings(volume.findings)}
    if keep_paths:
        row["path"] = os.path.relpath(files[0], root)
    result.series_rows.append(row)
    if keep_sources:
        result.sources.append(ExportSource(row["series_key"], "", list(files), row["reasons"], path=files[0]))


def write_scan(result: ScanResult, out: str | os.PathLike, keep_paths: bool = False) -> Path:
    """Write ``series.csv``, ``skipped.csv`` and ``scan.json`` atomically into ``out``."""
    out = Path(out)
    series_columns = SERIES_COLUMNS + (["path"] if keep_paths else [])
    write_csv(out / "series.csv", series_columns, result.series_rows)
    write_csv(out / "skipped.csv", SKIPPED_COLUMNS, result.skipped_rows)
    write_json(out / "scan.json", result.summary)
    return out
