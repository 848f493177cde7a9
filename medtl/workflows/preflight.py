"""``medtl config``: every check ``medtl cv`` makes before training, without training or decoding an image.

Three outcomes: a **problem** is what makes ``medtl cv`` refuse to start (exit 2); a
**warning** is what it would survive by skipping (cases whose files are missing or
unreadable or that have no patient id, an extra arm whose weights cannot be had: exit 1);
**facts** say what it will do (weights cached or downloaded from where).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..config import PUBLISHED_WEIGHTS, Config
from ..data.manifest import Case
from ..errors import ConfigError
from ..io.image_files import IMAGE_SUFFIXES
from ..io.nifti import is_nifti_path
from ..io.sitk_formats import is_sitk_path
from ..models.backbones import get_backbone_spec
from ..models.weights import WEIGHT_FILES, cache_dir, download_problem, source_url
from ..transforms.network_input import needs_mask
from .validate import Checked, check_experiment

SHOWN_LINES = 5  # manifest lines named per reason; the rest are counted


@dataclass
class Preflight:
    """What ``medtl config`` found (module docstring)."""

    checked: Checked
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


def _has_no_patient_id(path: Path) -> bool:
    """Whether the image cannot supply the patient id the manifest lacks: PNG/JPEG/NIfTI/NRRD carry none, a DICOM
    file (or a series folder's first file) without PatientID neither. An unreadable header is left to cv."""
    name = str(path).lower()
    if name.endswith(IMAGE_SUFFIXES) or is_nifti_path(path) or is_sitk_path(path):
        return True
    import pydicom

    first = path if path.is_file() else next((Path(d) / n for d, _, names in os.walk(path) for n in sorted(names)),
                                              None)
    if first is None:
        return False
    try:
        header = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["PatientID"], force=True)
    except Exception:  # noqa: BLE001 - any reader failure: cv reports it with its own reason code
        return False
    return not str(header.get("PatientID", "") or "").strip()


def _case_problem(case: Case, with_mask: bool) -> str | None:
    files = [("image", case.image)] + ([("mask", case.mask)] if with_mask and case.mask is not None else [])
    for role, path in files:
        if not path.exists():
            return f"FILE_NOT_FOUND ({role})"
        if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
            return f"PERMISSION_DENIED ({role})"
    if not case.patient_key and _has_no_patient_id(case.image):
        return "NO_PATIENT_ID"
    return None


def _check_cases(config: Config, result: Preflight) -> None:
    manifest = result.checked.manifest
    if manifest is None:
        return
    lines: dict[str, list[int]] = defaultdict(list)
    for case in manifest.cases:
        problem = _case_problem(case, needs_mask(config))
        if problem:
            lines[problem].append(case.line)
    skipped = sum(len(v) for v in lines.values())
    fixes = {"FILE_NOT_FOUND": "fix the path (relative paths are read from the manifest's folder)",
             "PERMISSION_DENIED": "make the file readable for this user",
             "NO_PATIENT_ID": "add a patient_id column (PNG/JPEG/NIfTI carry no PatientID; patient-level folds "
                              "need it)"}
    for reason, found in lines.items():
        shown = ", ".join(map(str, found[:SHOWN_LINES])) + (f" and {len(found) - SHOWN_LINES} more"
                                                             if len(found) > SHOWN_LINES else "")
        text = f"{len(found)} case(s) {reason}: manifest line(s) {shown}; {fixes[reason.split(' ')[0]]}"
        (result.problems if skipped == len(manifest.cases) else result.warnings).append(
            f"{text} ({'no case is usable: cv would stop' if skipped == len(manifest.cases) else 'cv skips them'})")
    usable = [c for c in manifest.cases if not _case_problem(c, needs_mask(config))]
    patients = {c.group_key or c.patient_key for c in usable}
    kfold = config.cv.scheme == "kfold" or (config.cv.scheme == "auto" and config.cv.splits_file is None
                                            and not any(c.split for c in manifest.cases))
    if kfold and usable and all(c.patient_key for c in usable) and len(patients) < config.cv.folds:
        result.problems.append(f"{len(patients)} usable patients for cv.folds: {config.cv.folds}; cv needs at "
                               "least as many patients as folds (lower cv.folds or add patients)")
    result.facts.append(f"manifest: {len(usable)} of {len(manifest.cases)} cases usable"
                        + (f", {len(patients)} patients" if usable and all(c.patient_key for c in usable) else
                           ", patients read from the DICOM headers during cv" if usable else ""))


def _check_weights(result: Preflight) -> None:
    for arm in result.checked.arms:
        source = arm.config.model.pretrained
        if source not in PUBLISHED_WEIGHTS:
            continue
        spec = get_backbone_spec(arm.config.model.backbone)
        weight = WEIGHT_FILES[spec.source_for(source, arm.config.data.dims)]
        if (cache_dir() / weight.filename).exists() and download_problem(weight) is None:
            result.facts.append(f"arm '{arm.name}': {source} weights for {spec.name} are cached and verified")
            continue
        problem = download_problem(weight)
        if problem is None:
            result.facts.append(f"arm '{arm.name}': {source} weights for {spec.name} are not cached; cv will "
                                f"download them from {source_url(weight).split('?')[0]} (licence: {weight.licence})")
        elif arm.required:
            result.problems.append(f"arm '{arm.name}' (the main arm): {source} weights for {spec.name} cannot be "
                                   f"had here: {problem}")
        else:
            result.warnings.append(f"arm '{arm.name}' would be skipped: {source} weights for {spec.name} cannot be "
                                   f"had here: {problem}")


def preflight(config: Config) -> Preflight:
    """Run every check ``medtl cv`` makes before training (a refusal of ``check_experiment`` raises as in cv)."""
    result = Preflight(check_experiment(config, need_manifest=False))
    _check_weights(result)
    _check_cases(config, result)
    if config.tune is not None:
        from .tune import check_tunable, search_plan

        try:
            check_tunable(config)
            result.facts.append(search_plan(config))
        except ConfigError as exc:
            result.problems.append(str(exc))
    return result
