"""Explanation maps in the cv report: Grad-CAM of each arm's first-fold model on that fold's validation cases.

For every arm (classification, or a multitask arm's first classification head, with
whole-image inputs, ``explain.report``): maps of the predicted class, overlays of a few true positives, false positives and false negatives
(the most confident first, then by case id: deterministic), the model-randomisation
check and, where the manifest gives the finding's mask, the pointing game. Only counts,
correlations and figures of pixels leave this module: no patient ids.

On a large fold the checks use a seeded sample of ``SANITY_CASES`` validation cases plus the
cases shown (Grad-CAM twice per case, model and randomised copy, would otherwise cost more
than a training epoch); ``n_cases`` and ``n_fold_cases`` say so.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..arms import is_tuned_arm
from ..evaluate import figures
from ..explain.gradcam import default_layer, gradcam_maps
from ..explain.sanity import pointing_game, randomised_top, rank_correlations
from ..io import load_volume
from ..models.task_view import TaskLogits
from ..tasks import get_task, task_of
from ..tasks.multitask import task_rows
from ..transforms.network_input import network_input

log = logging.getLogger("medtl")
SANITY_CASES = 200


def _groups(rows: list[dict], positive: int, per_group: int) -> dict[str, list[dict]]:
    """TP / FP / FN of the positive class (binary), or correct / wrong (more classes); most confident first."""
    def confidence(row):
        return -max(row[k] for k in row if k.startswith("prob_")), row["case_id"]

    predicted = {r["case_id"]: int(np.argmax([r[k] for k in sorted(k for k in r if k.startswith("prob_"))]))
                 for r in rows}
    if positive is None:
        kinds = {"correct": lambda r: predicted[r["case_id"]] == r["label_index"],
                 "wrong": lambda r: predicted[r["case_id"]] != r["label_index"]}
    else:
        kinds = {"true positive": lambda r: r["label_index"] == positive and predicted[r["case_id"]] == positive,
                 "false positive": lambda r: r["label_index"] != positive and predicted[r["case_id"]] == positive,
                 "false negative": lambda r: r["label_index"] == positive and predicted[r["case_id"]] != positive}
    return {kind: sorted(filter(keep, rows), key=confidence)[:per_group] for kind, keep in kinds.items()}


def _network_mask(run, case_id: str, config) -> np.ndarray | None:
    files = run.mask_files.get(case_id)
    if files is None:
        return None
    try:
        image, mask = load_volume(files[0], rgb=config.data.rgb), load_volume(files[1], as_label=True)
        return np.asarray(network_input(image, config, case_id, mask).sample["mask"])[0]
    except Exception as exc:  # noqa: BLE001 - a check on one case must not fail a finished run; it is counted out
        log.debug("pointing game: mask of %s not usable (%s)", case_id, type(exc).__name__)
        return None


def explained_head(config) -> str | None:
    """The multitask head the report explains: the arm's first classification task (``None``: single-task)."""
    return next((t.name for t in config.tasks if get_task(t.kind).uses_label), None)


def _arm_explanations(run, arm: str) -> tuple[dict, str]:
    from ..models.trained import load_trained_run

    config = run.arms[arm].config
    first = run.rundir.folds(arm)[0]
    trained = load_trained_run(run.out, arm=arm, fold=first.fold)
    model = trained.build_models(torch.device("cpu"))[0]
    rows = first.read_done()["rows"]
    head = explained_head(config)
    class_names = run.class_names
    randomised = randomised_top(model, config.train.seed)
    if head is not None:  # one classification head of a multitask model, on the cases with its label
        rows, class_names = task_rows(rows, head), run.class_names[head]
        model, randomised = TaskLogits(model, head), TaskLogits(randomised, head)
    positive = 1 if len(class_names) == 2 else None
    fold_cases = len(rows)
    rows = _sanity_sample(rows, positive, config)
    by_id = {c.case_id: c for c in run.cases_of(arm)}
    images = torch.from_numpy(np.stack([np.asarray(by_id[r["case_id"]].image, dtype=np.float32) for r in rows]))
    predicted = [int(np.argmax([r[f"prob_{n}"] for n in class_names])) for r in rows]
    layer = default_layer(model, tuple(images.shape[2:]))
    maps = gradcam_maps(model, images, predicted, layer)
    correlations = rank_correlations(maps, gradcam_maps(randomised, images, predicted, layer))
    finite = [c for c in correlations if not math.isnan(c)]
    summary = {"fold": first.name, "layer": layer, "n_cases": len(rows), **({"task": head} if head else {}),
               **({"n_fold_cases": fold_cases} if fold_cases > len(rows) else {}),
               "randomisation_spearman": {"mean": float(np.mean(finite)) if finite else math.nan,
                                          "min": float(np.min(finite)) if finite else math.nan,
                                          "max": float(np.max(finite)) if finite else math.nan,
                                          "n": len(finite), "n_flat": len(correlations) - len(finite)}}
    truth = [i for i, r in enumerate(rows) if positive is not None and r["label_index"] == positive]
    masks = {i: _network_mask(run, rows[i]["case_id"], config) for i in truth} if run.mask_files else {}
    with_mask = [i for i in truth if masks.get(i) is not None]
    if with_mask:
        positive_maps = gradcam_maps(model, images[with_mask], [positive] * len(with_mask), layer)
        summary["pointing_game"] = pointing_game(positive_maps, [masks[i] for i in with_mask])
    index = {r["case_id"]: i for i, r in enumerate(rows)}
    panels = []
    for kind, chosen in _groups(rows, positive, config.explain.cases_per_group).items():
        for row in chosen:
            i = index[row["case_id"]]
            image = np.asarray(images[i, 0])
            heat = maps[i]
            if image.ndim == 3:  # 3D: the axial slice through the map's maximum
                z = int(np.unravel_index(int(np.argmax(heat)), heat.shape)[0])
                image, heat = image[z], heat[z]
            prob = max(row[f"prob_{n}"] for n in class_names)
            panels.append((image, heat, f"{kind}, p={prob:.2f}"))
    return summary, figures.explanation_figure(panels, f"Grad-CAM ({layer}), arm {arm}") if panels else ""


def _sanity_sample(rows: list[dict], positive: int | None, config) -> list[dict]:
    """The fold's rows, or on a large fold the rows shown in the figure plus a seeded sample (fold order kept)."""
    if len(rows) <= SANITY_CASES:
        return rows
    shown = {r["case_id"] for chosen in _groups(rows, positive, config.explain.cases_per_group).values()
             for r in chosen}
    sample = np.random.default_rng(config.train.seed).choice(len(rows), SANITY_CASES, replace=False)
    keep = shown | {rows[int(i)]["case_id"] for i in sample}
    return [r for r in rows if r["case_id"] in keep]


def explanation_summary(run) -> dict | None:
    """``metrics.json["explanations"]`` and ``run.explanations`` (figures), or ``None`` where maps do not apply."""
    config = run.config
    task = task_of(config)
    if not (task.uses_label or task.is_composite) or not config.explain.report:  # maps explain class scores
        return None
    out = {"method": "gradcam", "arms": {}}
    for arm in run.arms:
        arm_config = run.arms[arm].config
        if not arm_config.data.fixed_size or not run.rundir.folds(arm):
            continue
        if is_tuned_arm(arm):  # one model per outer fold, each with its own parameters: its untuned arm is explained
            out["arms"][arm] = {"note": "not computed: the tuned arm's folds were trained with different parameters"}
            continue
        if task_of(arm_config).is_composite and explained_head(arm_config) is None:
            continue  # e.g. the segmentation task's control arm
        try:
            out["arms"][arm], run.explanations[arm] = _arm_explanations(run, arm)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not fail a finished run; the gap is reported
            log.warning("explanation maps of arm %s skipped: %s", arm, exc)
            out["arms"][arm] = {"note": f"not computed: {str(exc)[:160]}"}
    return out if out["arms"] else None
