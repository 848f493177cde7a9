"""The per-task results of a multi-task ``medtl cv`` run (``metrics.json["tasks"]``).

Each task gets the single-task shape (``summary``, ``folds``, ``arms``, ``comparisons``,
``primary_metric``), computed by that task's own code on its rows: the arms that
predicted it (multi-task arms and its single-task control) over the cases that carry its
target. The top level of metrics.json holds the first (primary) task's results, so
readers of single-task runs keep working.
"""

from __future__ import annotations

from typing import Callable

from ..evaluate.summary import arm_summary, compare_arms, verdict_line
from ..tasks import task_of
from ..tasks.multitask import task_folds, task_rows


def primary_view(config, class_names) -> tuple[str, Callable[[list[dict]], list[dict]], list[str]]:
    """``(task kind, rows -> its rows, class names)`` of the run's task, or of a multi-task run's first task."""
    multi = task_of(config)
    if not multi.is_composite:
        return multi.name, lambda rows: list(rows), class_names
    name = multi.primary_task
    return multi.kinds[name], lambda rows: task_rows(rows, name), class_names[name]


def task_results(config, class_names: dict, results: dict, pairs: list[tuple[str, str]]) -> dict[str, dict]:
    """``{task: {kind, primary_metric, class_names, main_arm, summary, folds, arms, comparisons}}`` from the
    arms' results (``{arm: ArmResult}``)."""
    multi = task_of(config)
    boot, seed = config.cv.bootstrap, config.train.seed
    out = {}
    for name, task in multi.tasks.items():
        kind, names = multi.kinds[name], class_names[name]
        rows = {arm: task_rows(result.rows, name) for arm, result in results.items()}
        rows = {arm: r for arm, r in rows.items() if r}  # a control arm of another task has none
        arms = {arm: arm_summary(kind, task_folds(results[arm].records, name), r, names, boot, seed)
                for arm, r in rows.items()}
        comparisons = [compare_arms(kind, a, rows[a], b, rows[b], names, boot, seed) for a, b in pairs
                       if a in rows and b in rows]
        main = next(iter(arms), None)
        out[name] = {"kind": kind, "primary_metric": task.primary_metric, "class_names": names, "main_arm": main,
                     "n_cases_with_target": len({r["case_id"] for r in rows.get(main, [])}),
                     "summary": arms[main]["summary"] if main else {}, "folds": arms[main]["folds"] if main else [],
                     "arms": arms, "comparisons": comparisons}
    return out


def task_verdicts(tasks: dict[str, dict]) -> list[str]:
    """One verdict line per comparison of every task, named by its task."""
    return [f"{name}: {verdict_line(c)}" for name, result in tasks.items() for c in result["comparisons"]]


def loss_weight_histories(run) -> dict[str, list[dict]]:
    """``{arm: [{epoch, task: weight, ...} per epoch of the first fold]}`` of the multi-task arms."""
    out = {}
    for arm, result in run.arms.items():
        history = result.histories[0] if result.histories else []
        if history and any(k.startswith("weight_") for k in history[0]):
            out[arm] = [{"epoch": h["epoch"], **{k[len("weight_"):]: v for k, v in h.items()
                                                 if k.startswith("weight_")}} for h in history]
    return out
