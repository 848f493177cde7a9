"""The results part of a cv run's ``metrics.json``, built from the arms' results alone.

``arm_metrics`` gives ``task, primary_metric, main_arm, summary, folds, arms, comparisons``
(and ``primary_task``, ``tasks``, ``loss_weights`` for a multi-task run) exactly as
``docs/outputs.md`` describes them, plus one verdict line per comparison. ``medtl cv`` adds
the run's facts (cases, warnings, sites, ...) around it; a caller of ``cross_validate`` gets
the same numbers from the same function.
"""

from __future__ import annotations

from ..arms import comparison_pairs, resolve_arms
from ..evaluate.summary import arm_summary, compare_arms, results_block, verdict_line
from ..results import ArmResult
from ..tasks import task_of
from .cv_tasks import task_results, task_verdicts


def verdicts_of(metrics: dict) -> list[str]:
    """One verdict line per comparison (each task's, prefixed with its name, for a multi-task run)."""
    if "tasks" in metrics:
        return task_verdicts(metrics["tasks"])
    return [verdict_line(c) for c in metrics["comparisons"]]


def default_pairs(config, results: dict[str, ArmResult]) -> list[tuple[str, str]]:
    """The comparisons of a run (``medtl.arms.comparison_pairs``) among the arms that ran."""
    return comparison_pairs([a for a in resolve_arms(config, check_paths=False) if a.name in results])


def arm_metrics(config, class_names, results: dict[str, ArmResult],
                pairs: list[tuple[str, str]] | None = None) -> tuple[dict, list[str]]:
    """``(metrics, verdict lines)`` of the arms' results; ``config`` is the main arm's, the first arm is the main."""
    task = task_of(config)
    pairs = default_pairs(config, results) if pairs is None else pairs
    main = next(iter(results))
    boot, seed = config.cv.bootstrap, config.train.seed
    if task.is_composite:
        tasks = task_results(config, class_names, results, pairs)
        first = tasks[task.primary_task]
        metrics = results_block(task.name, main, first["arms"], first["comparisons"], tasks, task.primary_task)
        metrics["loss_weights"] = config.multitask.weighting
        return metrics, task_verdicts(tasks)
    arms = {name: arm_summary(task.name, arm.records, arm.rows, class_names, boot, seed)
            for name, arm in results.items()}
    comparisons = [compare_arms(task.name, a, results[a].rows, b, results[b].rows, class_names, boot, seed)
                   for a, b in pairs]
    return results_block(task.name, main, arms, comparisons), [verdict_line(c) for c in comparisons]
