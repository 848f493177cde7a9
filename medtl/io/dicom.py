"""Load DICOM: a folder holding one series, or one file (2D image or multi-frame).

``index_dicom_files`` reads headers (in parallel, ``dicom_index``) and ``assemble_series`` groups
them; ``plan_to_volume`` decodes one ``SeriesPlan`` into a ``Volume``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .dicom_geometry import regular_grid
from .dicom_index import index_headers
from .dicom_pixels import physical_frames
from .dicom_records import DicomFile
from .dicom_series import SeriesPlan, assemble_series
from .guards import check_finite, check_size
from .reasons import Reason, format_findings
from .volume import Volume


def index_dicom_files(paths: list[str], workers: int | None = None) -> list[DicomFile]:
    """Header-only index of ``paths``: the unusable files (``skip`` set) first, then the usable ones by series."""
    index = index_headers(paths, workers)
    return index.skipped + [info for _, records in index.take_series() for info in records]


def plan_to_volume(plan: SeriesPlan) -> Volume:
    """Decode the planes of ``plan`` into a float32 ``Volume`` with physical values."""
    if plan.refused is not None:
        raise InputError(f"series {plan.series_key} cannot be loaded: {plan.refused}; "
                         "see the README's reason-code table for what the code means", plan.refused.reason.name)
    check_size((len(plan.frames), *plan.shape[-2:]), f"series {plan.series_key}")
    mapping: list[str] = []
    array = physical_frames(plan.frames, plan.files, mapping)
    check_finite(array, f"series {plan.series_key}")
    if plan.kind == "2d":
        array = array[0]
    first = next(iter(plan.files.values()))
    metadata = {
        "source": "dicom", "kind": plan.kind, "modality": plan.modality, "series_key": plan.series_key,
        "patient_key": plan.patient_key, "shape": list(array.shape), "value_mapping": mapping,
        "photometric": first.photometric, "slice_thickness": first.slice_thickness,
        "padding_value": first.padding_value, "n_files": len(plan.files),
        "reasons": format_findings(plan.findings),
    }
    geometry, findings = plan.geometry, list(plan.findings)
    regular = regular_grid(geometry, array) if plan.kind == "3d" else None
    if regular is not None:  # every voxel where the header says, not where a median step would put it
        array, geometry, finding = regular
        findings.append(finding)
        metadata["shape"] = list(array.shape)
        metadata["reasons"] = format_findings(findings)
    return Volume(array, tuple(float(s) for s in geometry.spacing), tuple(float(o) for o in geometry.origin),
                  geometry.direction.copy(), metadata, findings)


def _files_under(folder: Path) -> list[str]:
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)


def load_dicom(path: str | os.PathLike, series_key: str | None = None, workers: int | None = None) -> Volume:
    """Load a DICOM file, or the one series in a folder (``series_key`` picks one of several)."""
    return plan_to_volume(dicom_plan(path, series_key, workers))


def dicom_plan(path: str | os.PathLike, series_key: str | None = None, workers: int | None = None) -> SeriesPlan:
    """The ``SeriesPlan`` of a DICOM file or of the one series in a folder (headers only)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"DICOM input does not exist: {path}; check the path or the manifest row",
                         Reason.FILE_NOT_FOUND.name)
    paths = _files_under(path) if path.is_dir() else [str(path)]
    indexed = index_dicom_files(paths, workers)
    usable = [f for f in indexed if f.skip is None]
    if not usable:
        reasons = sorted({str(f.skip) for f in indexed})[:5]
        raise InputError(f"no loadable DICOM image in {path} ({len(paths)} files; reasons: {', '.join(reasons)}); "
                         f"run `medtl scan {path} --out DIR` for a per-file inventory",
                         indexed[0].skip.reason.name if indexed and indexed[0].skip else None)
    plans = [p for p in assemble_series(usable).plans]
    if series_key is not None:
        plans = [p for p in plans if p.series_key == series_key]
        if not plans:
            raise InputError(f"no series with key {series_key} in {path}; `medtl scan` lists the keys")
    loadable = [p for p in plans if p.refused is None]
    if len(loadable) > 1:
        keys = ", ".join(f"{p.series_key} ({p.kind} {'x'.join(map(str, p.shape))})" for p in loadable[:8])
        raise InputError(f"{path} holds {len(loadable)} volumes: {keys}; point the manifest at one series "
                         "folder or pass series_key=")
    return loadable[0] if loadable else plans[0]


def load_dicom_volumes(path: str | os.PathLike, workers: int | None = None) -> dict[str, Volume]:
    """Every loadable volume in a DICOM file or folder (e.g. each b-value/direction of a DTI series), by series key."""
    path = Path(path)
    paths = _files_under(path) if path.is_dir() else [str(path)]
    indexed = index_dicom_files(paths, workers)
    usable = [f for f in indexed if f.skip is None]
    if not usable:
        raise InputError(f"no loadable DICOM image in {path}; run `medtl scan {path} --out DIR` for the reasons",
                         indexed[0].skip.reason.name if indexed and indexed[0].skip else Reason.NOT_DICOM.name)
    return {plan.series_key: plan_to_volume(plan) for plan in assemble_series(usable).plans if plan.refused is None}
