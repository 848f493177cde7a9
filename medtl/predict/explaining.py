"""``medtl predict --explain gradcam|occlusion``: per-case explanation maps on the original image grid.

Maps are computed on the network grid for the predicted class (or ``--explain-class``),
averaged over the fold models (Grad-CAM: each member's map scaled to maximum 1, the mean
scaled again; occlusion: the mean probability drop), then interpolated linearly onto the
input's original grid like the segmentation masks, and written as NIfTI with the
input's geometry.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError
from ..models.trained import TrainedRun
from ..plumbing.paths import contained, safe_stem
from .resample import to_original_grid
from .writers import write_nifti_atomic

METHODS = ("gradcam", "occlusion")
MAX_OCCLUSION_BOXES = 100_000  # occluded copies per image and fold model


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
    shape = tuple(int(s) for s in trained.config.data.image_size)
    if options.explain == "occlusion":
        _check_occlusion(options.occlusion_size, options.occlusion_overlap, shape)
    if options.explain == "gradcam" and options.explain_layer is not None:
        _check_layer(trained, options.explain_layer, shape)


def _check_occlusion(size, overlap, shape: tuple[int, ...]) -> None:
    """The occlusion box must fit the network input and the boxes must advance (a stride of at least 1 voxel)."""
    if not isinstance(size, int) or not 1 <= size <= min(shape):
        raise InputError(f"--occlusion-size {size}: use a whole number from 1 to {min(shape)} (the network input is "
                         f"{'x'.join(map(str, shape))})")
    if not (isinstance(overlap, (int, float)) and math.isfinite(overlap) and 0 <= overlap < 1):
        raise InputError(f"--occlusion-overlap {overlap}: use a number with 0 <= F < 1 (stride = size x (1 - F))")
    stride = max(1, int(size * (1 - overlap)))
    boxes = math.prod(math.ceil(max(0, s - size) / stride) + 1 for s in shape)
    if boxes > MAX_OCCLUSION_BOXES:
        raise InputError(f"--occlusion-size {size} with --occlusion-overlap {overlap} needs {boxes:,} occluded copies "
                         f"per image and fold model (more than {MAX_OCCLUSION_BOXES:,}); use a larger size or a "
                         "smaller overlap")


def _check_layer(trained: TrainedRun, layer: str, shape: tuple[int, ...]) -> None:
    """``--explain-layer`` names a module of the network whose output keeps a spatial extent (did-you-mean)."""
    import difflib

    model = trained.build_models(torch.device("cpu"))[0]
    names = [name for name, _ in model.named_modules() if name and not name.startswith("_")]
    if layer not in names:
        close = difflib.get_close_matches(layer, names, n=3)
        raise InputError(f"--explain-layer {layer!r} is not a layer of this model"
                         + (f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "")
                         + " (e.g. 'backbone.layer3'; the stages are listed in the report's Grad-CAM section)")
    seen: dict[str, tuple] = {}
    module = dict(model.named_modules())[layer]
    def record(_module, _inputs, out) -> None:  # returning None keeps the layer's output unchanged
        seen.setdefault("shape", tuple(out.shape) if isinstance(out, torch.Tensor) else ())

    handle = module.register_forward_hook(record)
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 1, *shape))
    finally:
        handle.remove()
    output = seen.get("shape") or "not a tensor"
    if len(seen.get("shape", ())) != 2 + len(shape):
        raise InputError(f"--explain-layer {layer!r} has no spatial extent (its output is {output}); Grad-CAM needs "
                         "a convolutional stage, e.g. a backbone stage")


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
