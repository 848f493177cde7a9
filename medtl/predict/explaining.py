"""``medtl predict --explain gradcam|occlusion``: per-case explanation maps on the original image grid.

Maps are computed on the network grid for the predicted class (or ``--explain-class``),
averaged over the fold models (Grad-CAM: each member's map scaled to maximum 1, the mean
scaled again; occlusion: the mean probability drop), then interpolated linearly onto the
input's original grid like the segmentation masks, and written as NIfTI with the
input's geometry.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..models.trained import TrainedRun
from ..plumbing.paths import contained, safe_stem
from .resample import to_original_grid
from .writers import write_nifti_atomic

METHODS = ("gradcam", "occlusion")


def check_explain(trained: TrainedRun, options) -> None:
    """Refuse an explanation request this run cannot honour, before anything is predicted."""
    if options.explain is None:
        return
    if options.explain not in METHODS:
        raise InputError(f"--explain {options.explain}: use one of {', '.join(METHODS)}")
    kinds = trained.task_kinds
    if kinds:
        classifying = [name for name, (task, _, _) in trained.heads().items() if task.uses_label]
        if not classifying:
            raise InputError("--explain maps explain a classification head; this multitask model has none")
        if options.explain_task is not None and options.explain_task not in classifying:
            raise InputError(f"--explain-task {options.explain_task!r} is not a classification task of this model "
                             f"({', '.join(classifying)})")
    elif options.explain_task is not None:
        raise InputError("--explain-task applies to multitask runs; this run has one task")
    elif not trained.task.uses_label:
        raise InputError("--explain maps explain a classification; for segmentation the mask and "
                         "--probability-maps already show where")
    if not trained.config.data.fixed_size:
        raise InputError("--explain needs whole-image inputs (data.mode: resize, or a data.roi crop); this run "
                         "classifies native-extent images by window aggregation")
    names = explained_class_names(trained, options)
    if options.explain_class is not None and options.explain_class not in names:
        raise InputError(f"--explain-class {options.explain_class!r} is not a class of this model "
                         f"({', '.join(names)})")
    if options.explain == "gradcam" and not trained.has_layers:
        raise InputError("Grad-CAM needs the PyTorch model's layers: explain with the run folder (medtl predict RUN "
                         "...), or use --explain occlusion on the export")


def explained_task(trained: TrainedRun, options) -> str | None:
    """The multitask head the maps explain (``--explain-task``, default the first classification task)."""
    kinds = trained.task_kinds
    if not kinds:
        return None
    return options.explain_task or next(name for name, (task, _, _) in trained.heads().items() if task.uses_label)


def explained_class_names(trained: TrainedRun, options) -> list[str]:
    """The class names of the explained head."""
    task = explained_task(trained, options)
    return trained.class_names[task] if task else trained.class_names


def explanation_maps(models: list, images: torch.Tensor, classes: list[int], options, progress: bool = False,
                     task: str | None = None) -> np.ndarray:
    """``(B, *spatial)`` ensemble maps on the network grid (of head ``task`` of multitask models)."""
    from ..explain.gradcam import gradcam_maps
    from ..explain.occlusion import occlusion_maps

    images = images.detach().float().cpu()
    if task is not None:  # one head of a multitask model
        from ..models.task_view import TaskLogits

        models = [TaskLogits(m, task) for m in models]
    if options.explain == "gradcam":
        maps = np.mean([gradcam_maps(m, images, classes, options.explain_layer) for m in models], axis=0)
        peaks = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, *[1] * (maps.ndim - 1))
        return np.where(peaks > 0, maps / np.maximum(peaks, 1e-12), 0.0).astype(np.float32)
    return np.mean([occlusion_maps(m, images, classes, options.occlusion_size, options.occlusion_overlap,
                                   progress=progress) for m in models], axis=0).astype(np.float32)


def write_explanation(key: str, loaded: dict, network_map: np.ndarray, out, method: str) -> str:
    """The map on the input's original grid (same shape and geometry as the input); returns its file name."""
    original = to_original_grid(network_map[None], loaded["network_affine"], loaded["input_affine"],
                                loaded["input_shape"])[0]
    name = f"maps/{safe_stem(key)}_{method}.nii.gz"
    write_nifti_atomic(contained(out, name), original, loaded["geometry"])
    return name
