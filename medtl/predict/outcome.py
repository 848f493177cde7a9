"""One segmentation result: mask (and probabilities) on the original grid, files, metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..models.trained import TrainedRun
from ..plumbing.paths import contained, safe_stem
from .resample import labels_on_original_grid
from .writers import write_nifti_atomic

log = logging.getLogger("medtl")


def _labels(probabilities: np.ndarray, loaded: dict) -> tuple[np.ndarray, np.ndarray]:
    return labels_on_original_grid(probabilities, loaded["network_affine"], loaded["input_affine"],
                                   loaded["input_shape"])


def _case_metrics(labels: np.ndarray, loaded: dict, num_classes: int) -> dict:
    from ..tasks.metrics import segmentation_case_metrics

    return segmentation_case_metrics(labels, loaded["truth_mask"], num_classes, loaded["spacing"])


def segmentation_record(key: str, loaded: dict, ensemble: np.ndarray, members: np.ndarray, trained: TrainedRun,
                        out: Path, probability_maps: bool, dicom_seg: bool, truth: bool, notes: list[str],
                        deidentify_seg: bool = False, class_names: list[str] | None = None,
                        num_classes: int | None = None) -> dict:
    """Write the mask (NIfTI; DICOM-SEG for DICOM input; optional probabilities) and describe it.

    ``class_names``/``num_classes``: the segmentation head's (default: the run's; a multitask run passes its
    segmentation task's)."""
    class_names = trained.class_names if class_names is None else class_names
    num_classes = trained.num_classes if num_classes is None else num_classes
    geometry, dims = loaded["geometry"], len(loaded["input_shape"])
    labels, foreground = _labels(ensemble, loaded)
    stem = safe_stem(key)
    mask_file = f"masks/{stem}.nii.gz"
    write_nifti_atomic(contained(out, mask_file), labels, geometry)
    prob_files = []
    if probability_maps:
        for c, channel in enumerate(foreground, start=1):
            prob_files.append(f"probs/{stem}_class{c}.nii.gz")
            write_nifti_atomic(contained(out, prob_files[-1]), channel, geometry)
    seg_file = ""
    if dicom_seg and loaded["frame_refs"]:
        from .dicom_seg import write_dicom_seg

        try:
            write_dicom_seg(contained(out, f"seg/{stem}.dcm"), loaded["frame_refs"], labels.reshape(geometry.shape),
                            class_names, trained.model_id, deidentify=deidentify_seg)
            seg_file = f"seg/{stem}.dcm"
        # highdicom refuses some odd sources; the NIfTI mask stands, and the row says why the SEG is missing.
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: DICOM-SEG not written (%s); the NIfTI mask was", key, type(exc).__name__)
            notes.append(f"DICOM_SEG_FAILED({type(exc).__name__})")
    voxels = int((labels > 0).sum())
    record = {"shape": "x".join(map(str, geometry.shape[-dims:])), "foreground_voxels": voxels,
              "foreground_mm": round(voxels * geometry.voxel_volume(dims), 3), "mask_file": mask_file,
              "seg_file": seg_file, "prob_files": ";".join(prob_files)}
    if truth:
        record["metrics"] = _case_metrics(labels, loaded, num_classes)
        record["member_metrics"] = [_case_metrics(_labels(m, loaded)[0], loaded, num_classes) for m in members]
    return record
