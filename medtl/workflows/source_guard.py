"""The leak guard of every source stage: its images against the target run's cases."""

from __future__ import annotations

from ..config import Config
from ..data.case_cache import CaseCache
from ..data.dataset import PreparedCase, prepare_cases
from ..data.manifest import read_config_manifest
from ..data.target_overlap import check_pool, target_overlap


def guard_cases(config: Config, progress: bool) -> list[PreparedCase] | None:
    """The target run's cases when no run passes them (``medtl pretrain``): prepared from ``data.manifest``."""
    if config.data.manifest is None:
        return None
    manifest = read_config_manifest(config)
    cases, _ = prepare_cases(manifest, config, CaseCache(), progress)
    return cases


def guard_notes(config: Config, source_cases: list[PreparedCase], target_cases: list[PreparedCase] | None,
                labelled: bool) -> list[str]:
    """Refuse source images of the target run (unless ``source.allow_target_images``); notes for the report."""
    if target_cases is None:
        return ["the source images were not checked against a target run (no data.manifest)"]
    overlap = target_overlap(source_cases, target_cases)
    note = check_pool(overlap, config.source.allow_target_images, labelled)
    notes = [note] if note else []
    if overlap.near_note():
        notes.append(overlap.near_note())
    if overlap.n_without_patient:
        notes.append(f"{overlap.n_without_patient} source image(s) have no patient id: checked against the target "
                     "run by their images only (pixels, network input, near-identical)")
    return notes
